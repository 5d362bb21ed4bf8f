"""A MONAI Label local datastore whose every path stays in the studies folder.

MONAI Label's :class:`LocalDatastore` joins client-supplied ids and tags to its folder, so an id
such as ``../../x`` or ``/home/me/x`` writes, serves or deletes files anywhere the server can
reach. :class:`ConfinedDatastore` accepts ids and tags that are plain names only
(:func:`volgan.label.names.check_name`), stores NIfTI volumes only, checks that every path
resolves (links followed) directly inside the studies folder, its ``labels/`` folder or a tag's
folder, writes through a temporary file and a rename (never through a link, never half-written),
never replaces an existing image, and deletes the folder entry itself, never a link's target.
Unknown ids raise MONAI Label's not-found exceptions, which the server answers with 404.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import nibabel as nib
from filelock import FileLock
from monailabel.datastore.local import DataModel, ImageLabelModel, LocalDatastore
from monailabel.interfaces.exception import ImageNotFoundException, LabelNotFoundException

from volgan.label.names import VOLUME_EXTENSIONS, BadName, OutsideStudies, check_name, confined, volume_extension

logger = logging.getLogger(__name__)

IMAGES_DIR = "."
LABELS_DIR = "labels"


class BadVolume(ValueError):
    """An uploaded file that is not a readable NIfTI volume (HTTP 400)."""


def check_volume(path: str | os.PathLike, name: str) -> None:
    """Read ``path``'s NIfTI header (not its data) and check that it describes a 3D or 4D volume.

    Raises:
        BadVolume: naming ``name`` (the client's file name) and what is wrong.
    """
    try:
        img = nib.load(str(path))
    except Exception as err:  # nibabel raises many types for a damaged header
        raise BadVolume(f"{name}: not a readable NIfTI volume ({err})") from err
    if not isinstance(img, (nib.Nifti1Image, nib.Nifti2Image)):
        raise BadVolume(f"{name}: not a NIfTI volume ({type(img).__name__})")
    if len(img.shape) not in (3, 4):
        raise BadVolume(f"{name}: a {len(img.shape)}D image; the datastore holds 3D volumes")


class ConfinedDatastore(LocalDatastore):
    """:class:`LocalDatastore` confined to its folder, for NIfTI volumes (``.nii.gz``, ``.nii``).

    Args:
        datastore_path: the studies folder.
    """

    def __init__(self, datastore_path: str | os.PathLike):
        self._root = Path(datastore_path).resolve()
        super().__init__(str(self._root), images_dir=IMAGES_DIR, labels_dir=LABELS_DIR,
                         extensions=tuple(f"*{e}" for e in VOLUME_EXTENSIONS), auto_reload=False)

    # --- folders -------------------------------------------------------------------------------

    def _images_root(self) -> Path:
        return self._root

    def _labels_root(self) -> Path:
        return confined(self._root, LABELS_DIR)

    def _tag_dir(self, tag: str, *, create: bool = False) -> Path:
        check_name(tag, "label tag")
        folder = confined(self._labels_root(), tag)
        if create:
            folder.mkdir(exist_ok=True)
        return folder

    def _image_entry(self, image_id: str) -> tuple[Path, ImageLabelModel]:
        check_name(image_id, "image id")
        obj = self._datastore.objects.get(image_id)
        if obj is None:
            raise ImageNotFoundException(f"image {image_id!r} is not in the studies folder")
        return confined(self._images_root(), self._filename(image_id, obj.image.ext)), obj

    def _label_entry(self, label_id: str, tag: str) -> tuple[Path, DataModel]:
        check_name(label_id, "label id")
        check_name(tag, "label tag")
        label = self._datastore.label(label_id, tag)
        if label is None:
            raise LabelNotFoundException(f"no label {label_id!r} with tag {tag!r}")
        return confined(self._tag_dir(tag), self._filename(label_id, label.ext)), label

    # --- listing: only plain names with a volume extension ---------------------------------------

    def _list_files(self, path, patterns):
        files = super()._list_files(path, patterns)
        kept = {}
        for name, file in files.items():
            image_id, ext = self._to_id(name)
            try:
                check_name(image_id)
                confined(path, name)
            except (BadName, OutsideStudies) as err:
                logger.warning("not served: %s", err)
                continue
            if ext in VOLUME_EXTENSIONS:
                kept[name] = file
        return kept

    def _init_from_datastore_file(self, throw_exception=False):
        super()._init_from_datastore_file(throw_exception=throw_exception)
        # the stored model must not move the folders or carry ids that are paths
        self._datastore.images_dir = IMAGES_DIR
        self._datastore.labels_dir = LABELS_DIR
        for image_id in list(self._datastore.objects):
            obj = self._datastore.objects[image_id]
            try:
                check_name(image_id)
                for tag in obj.labels:
                    check_name(tag, "label tag")
            except BadName as err:
                logger.warning("%s: entry dropped: %s", self._datastore_config_path, err)
                del self._datastore.objects[image_id]
                continue
            if obj.image.ext not in VOLUME_EXTENSIONS or any(l.ext not in VOLUME_EXTENSIONS for l in obj.labels.values()):
                logger.warning("%s: entry %r dropped: not a NIfTI volume", self._datastore_config_path, image_id)
                del self._datastore.objects[image_id]

    # --- reading ----------------------------------------------------------------------------------

    def get_image_uri(self, image_id: str) -> str:
        return str(self._image_entry(image_id)[0].resolve())

    def get_image_info(self, image_id: str) -> dict[str, Any]:
        self._image_entry(image_id)
        return super().get_image_info(image_id)

    def get_label_uri(self, label_id: str, label_tag: str) -> str:
        return str(self._label_entry(label_id, label_tag)[0].resolve())

    def get_label_info(self, label_id: str, label_tag: str) -> dict[str, Any]:
        return dict(self._label_entry(label_id, label_tag)[1].info)

    def update_image_info(self, image_id: str, info: dict[str, Any]) -> None:
        self._image_entry(image_id)
        super().update_image_info(image_id, info)

    def update_label_info(self, label_id: str, label_tag: str, info: dict[str, Any]) -> None:
        self._label_entry(label_id, label_tag)
        super().update_label_info(label_id, label_tag, info)

    # --- writing ----------------------------------------------------------------------------------

    def _place(self, source: str, dest: Path) -> None:
        """Copy ``source`` to ``dest`` through a hidden temporary file in ``dest``'s folder."""
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=".upload-", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as out, open(source, "rb") as src:
                shutil.copyfileobj(src, out)
            os.replace(tmp, dest)  # replaces a link itself, never its target
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def add_image(self, image_id: str, image_filename: str, image_info: dict[str, Any]) -> str:
        ext = volume_extension(image_filename)
        image_id = check_name(image_id or self._to_id(os.path.basename(image_filename))[0], "image id")
        check_volume(image_filename, f"{image_id}{ext}")
        name = self._filename(image_id, ext)
        dest = confined(self._images_root(), name)
        with FileLock(self._lock_file):
            existing = self._datastore.objects.get(image_id)
            if existing is not None or os.path.lexists(dest):
                raise FileExistsError(f"image {image_id!r} already exists; delete it first to replace it")
            self._place(image_filename, dest)
            info = dict(image_info or {})
            info.update(ts=int(time.time()), name=name)
            self._datastore.objects[image_id] = ImageLabelModel(image=DataModel(info=info, ext=ext))
            self._update_datastore_file(lock=False)
        logger.info("added image %s (%s)", image_id, dest)
        return image_id

    def remove_image(self, image_id: str) -> None:
        path, obj = self._image_entry(image_id)
        for tag in list(obj.labels):
            self.remove_label(image_id, tag)
        if path.is_dir() and not path.is_symlink():
            raise IsADirectoryError(f"{path}: a folder; only volume files are removed")
        path.unlink(missing_ok=True)
        logger.info("removed image %s (%s)", image_id, path)
        self.refresh()

    def save_label(self, image_id: str, label_filename: str, label_tag: str, label_info: dict[str, Any]) -> str:
        self._image_entry(image_id)
        ext = volume_extension(label_filename)
        check_volume(label_filename, f"label {image_id}{ext}")
        name = self._filename(image_id, ext)
        with FileLock(self._lock_file):
            dest = confined(self._tag_dir(label_tag, create=True), name)
            self._place(label_filename, dest)
            info = dict(label_info or {})
            info.update(ts=int(time.time()), name=name)
            self._datastore.objects[image_id].labels[label_tag] = DataModel(info=info, ext=ext)
            self._update_datastore_file(lock=False)
        logger.info("saved label %s for %s (%s)", label_tag, image_id, dest)
        return image_id

    def remove_label(self, label_id: str, label_tag: str) -> None:
        path, _ = self._label_entry(label_id, label_tag)
        if path.is_dir() and not path.is_symlink():
            raise IsADirectoryError(f"{path}: a folder; only volume files are removed")
        path.unlink(missing_ok=True)
        self.refresh()
