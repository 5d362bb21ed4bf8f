"""The MONAI Label app: one :class:`BundleInferTask` per bundle, inference only, offline."""

from __future__ import annotations

import os
from pathlib import Path

from monailabel.interfaces.app import MONAILabelApp

from volgan import __version__
from volgan.label.infer_task import BundleInferTask


class VolganApp(MONAILabelApp):
    """Serves volgan bundles. App config (``--conf key value``):

    * ``bundles``: bundle folders separated by ``os.pathsep`` (required);
    * ``device``: ``cpu``, ``cuda``, ``cuda:1`` (default: CUDA if available);
    * ``fast``: ``true`` for the predictor's fast mode.

    It downloads nothing: no model zoo index, no pre-trained weights; each bundle's own
    ``models/model.pt`` is loaded with ``weights_only=True``.
    """

    def __init__(self, app_dir: str, studies: str, conf: dict[str, str]):
        self.bundle_dirs = [Path(p) for p in conf.get("bundles", "").split(os.pathsep) if p]
        if not self.bundle_dirs:
            raise ValueError("VolganApp needs --conf bundles <folder>[:<folder>...]")
        self.device = conf.get("device") or None
        self.fast = conf.get("fast", "false").lower() in ("1", "true", "yes")
        super().__init__(app_dir=app_dir, studies=studies, conf=conf, name="volgan",
                         description="3D reconstruction with GANs (volgan bundles)", version=__version__)

    def init_infers(self):
        return {b.name: BundleInferTask(b, device=self.device, fast=self.fast) for b in self.bundle_dirs}
