"""The MONAI Label app: one :class:`BundleInferTask` per bundle, inference only, offline."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from monailabel.interfaces.app import MONAILabelApp

from volgan import __version__
from volgan.label.datastore import ConfinedDatastore
from volgan.label.infer_task import BundleInferTask


class VolganApp(MONAILabelApp):
    """Serves volgan bundles. App config (``--conf key value``):

    * ``bundles``: bundle folders separated by ``os.pathsep`` (required);
    * ``device``: ``cpu``, ``cuda``, ``cuda:1`` (default: CUDA if available);
    * ``fast``: ``true`` for the predictor's fast mode.

    It downloads nothing: no model zoo index, no pre-trained weights; each bundle's own
    ``models/model.pt`` is loaded with ``weights_only=True``. Its datastore is a
    :class:`~volgan.label.datastore.ConfinedDatastore` on the studies folder, and :meth:`infer`
    reads only studies of that datastore (by id) or files registered by :meth:`upload`.
    """

    def __init__(self, app_dir: str, studies: str, conf: dict[str, str]):
        self.bundle_dirs = [Path(p) for p in conf.get("bundles", "").split(os.pathsep) if p]
        if not self.bundle_dirs:
            raise ValueError("VolganApp needs --conf bundles <folder>[:<folder>...]")
        self.device = conf.get("device") or None
        self.fast = conf.get("fast", "false").lower() in ("1", "true", "yes")
        self._uploads: set[str] = set()
        self._uploads_lock = threading.Lock()
        super().__init__(app_dir=app_dir, studies=studies, conf=conf, name="volgan",
                         description="3D reconstruction with GANs (volgan bundles)", version=__version__)

    def init_infers(self):
        return {b.name: BundleInferTask(b, device=self.device, fast=self.fast) for b in self.bundle_dirs}

    def init_datastore(self) -> ConfinedDatastore:
        if self.studies.startswith(("http://", "https://")):
            raise ValueError(f"{self.studies}: VolganApp serves a local studies folder, not a remote datastore")
        return ConfinedDatastore(self.studies)

    @contextmanager
    def upload(self, path: str) -> Iterator[str]:
        """Let :meth:`infer` read ``path`` (an uploaded file) while the context lasts."""
        with self._uploads_lock:
            self._uploads.add(path)
        try:
            yield path
        finally:
            with self._uploads_lock:
                self._uploads.discard(path)

    def infer(self, request, datastore=None):
        """MONAI Label's infer, for a study id of the datastore or a registered upload only.

        Raises:
            BadName: the image is a path (or an id that is not a plain name) and no upload.
            ImageNotFoundException: no study with that id.
        """
        image = request.get("image")
        with self._uploads_lock:
            uploaded = image in self._uploads
        path = image if uploaded else self.datastore().get_image_uri(image)
        return super().infer({**request, "image": path, "save_label": False}, datastore)
