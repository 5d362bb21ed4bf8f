"""A MONAI Label infer task that runs one volgan bundle on a whole volume."""

from __future__ import annotations

import logging
import os
import tempfile
import time
from pathlib import Path

from monailabel.interfaces.tasks.infer_v2 import InferTask, InferType

from volgan.bundle import bundle_predictor
from volgan.io import read_volume, write_nifti

logger = logging.getLogger(__name__)


class BundleInferTask(InferTask):
    """Infer task of type "others": returns the reconstructed image as NIfTI.

    The bundle's predictor reads the study (NIfTI file or DICOM series folder), runs sliding-window
    inference and writes the result on the study's own grid and in its units, so nothing has to be
    restored afterwards (MONAI Label's nearest-neighbour label restoring is never applied to an
    image). Results are images, not labels: they are not saved into the datastore as labels.
    """

    def __init__(self, bundle: str | os.PathLike, *, device: str | None = None, fast: bool = False):
        self.bundle = Path(bundle)
        self.predictor = bundle_predictor(
            self.bundle, device=None if device is None else f"$torch.device({device!r})", fast=fast or None
        )
        description = f"volgan bundle {self.bundle.name}" + (" (fast mode)" if fast else "")
        super().__init__(type=InferType.OTHERS, labels=None, dimension=3, description=description,
                         config={"fast": fast})

    def is_valid(self) -> bool:
        return (self.bundle / "configs" / "inference.yaml").is_file()

    def __call__(self, request) -> tuple[str, dict]:
        start = time.perf_counter()
        request["save_label"] = False
        volume = read_volume(request["image"])
        result = self.predictor.predict(volume)
        fd, out = tempfile.mkstemp(suffix=".nii.gz", prefix=f"{self.bundle.name}-")
        os.close(fd)
        write_nifti(result, out)
        seconds = time.perf_counter() - start
        logger.info("%s: %s -> %s in %.1f s", self.bundle.name, request["image"], out, seconds)
        return out, {"bundle": self.bundle.name, "seconds": round(seconds, 3), "shape": list(result.shape),
                     "units": result.units or ""}
