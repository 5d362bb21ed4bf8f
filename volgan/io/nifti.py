"""NIfTI reading and atomic writing with nibabel (affine, units and on-disk dtype kept)."""

from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path

import nibabel as nib
import numpy as np

from volgan.io.claimed_size import check_claimed_size
from volgan.io.errors import VolumeError
from volgan.io.nifti_header import NiftiHeaderInfo, apply_header_info, header_info
from volgan.io.validate import as_3d, check_spacing, check_values
from volgan.io.volume import Volume

NIFTI_SUFFIXES = (".nii", ".nii.gz")

UNITS_TAG = "volgan units="  # the comment (and, without an input description, the description): the values' units
COMMENT_ECODE = 6  # NIFTI_ECODE_COMMENT


def is_nifti(path: str | os.PathLike) -> bool:
    return str(path).lower().endswith(NIFTI_SUFFIXES)


def nifti_stem(path: str | os.PathLike) -> str:
    """File name without ``.nii`` / ``.nii.gz``."""
    name = Path(path).name
    for suffix in (".nii.gz", ".nii"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return Path(name).stem


def read_nifti(path: str | os.PathLike, *, units: str | None = None, check: bool = True) -> Volume:
    """Read a 3D NIfTI file into a float32 :class:`Volume`.

    Scaling (``scl_slope``/``scl_inter``) is applied. Raises :class:`VolumeError` naming the file
    for a missing, unreadable, truncated, non-3D, empty or NaN/inf-filled file, and, before any
    voxel is read, for a header claiming more data than the file holds or than the memory budget
    allows (:func:`volgan.io.claimed_size.check_claimed_size`).
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise VolumeError(path, "does not exist")
    if os.path.isdir(path):
        raise VolumeError(path, "is a folder, not a NIfTI file")
    try:
        img = nib.load(path)
    except (gzip.BadGzipFile, zlib.error, EOFError) as err:
        raise VolumeError(path, f"is not a valid gzip-compressed NIfTI file ({err})") from err
    except Exception as err:  # nibabel raises ImageFileError, HeaderDataError, OSError...
        raise VolumeError(path, f"is not a readable NIfTI image ({type(err).__name__}: {err})") from err
    header, proxy = img.header, img.dataobj  # the proxy knows where the voxel data starts
    check_claimed_size(path, proxy.shape, proxy.dtype, int(getattr(proxy, "offset", header.get_data_offset())))
    try:
        data = np.asarray(img.dataobj, dtype=np.float32)
    except (EOFError, zlib.error, gzip.BadGzipFile) as err:
        raise VolumeError(path, f"is truncated or its compressed data is corrupt ({err})") from err
    except (ValueError, OSError) as err:
        raise VolumeError(path, f"is truncated: the header promises more voxel data than the file holds ({err})") from err
    data = as_3d(data, path)
    info = header_info(header, np.asarray(img.affine, dtype=np.float64))
    affine = info.affine
    if check:
        check_spacing(tuple(np.linalg.norm(affine[:3, :3], axis=0)), path)
        check_values(data, path)
    if units is None:
        units = value_units(header)
    return Volume(
        array=data,
        affine=affine,
        path=path,
        units=units or "a.u.",
        dtype=np.dtype(img.get_data_dtype()),
        meta={"descrip": info.descrip, "xyzt_units": (info.spatial_unit, info.time_unit), "nifti": info},
    )


def value_units(header: nib.Nifti1Header) -> str | None:
    """The values' units volgan wrote into ``header``: its comment extension, else its description."""
    texts = [bytes(ext.get_content()).decode("utf-8", "replace") for ext in header.extensions
             if ext.get_code() == COMMENT_ECODE]
    texts.append(header["descrip"].tobytes().split(b"\x00")[0].decode("latin-1"))
    for text in texts:
        if text.startswith(UNITS_TAG):
            return text[len(UNITS_TAG):].strip() or None
    return None


def temporary_path(path: str | os.PathLike) -> Path:
    """A hidden sibling of ``path`` with the same NIfTI suffix, for atomic writes."""
    path = Path(path)
    suffix = ".nii.gz" if path.name.lower().endswith(".nii.gz") else ".nii"
    return path.with_name(f".{nifti_stem(path)}.partial-{os.getpid()}{suffix}")


def write_nifti(volume: Volume, path: str | os.PathLike, *, dtype: np.dtype | str = np.float32) -> Path:
    """Write ``volume`` to ``path`` atomically (temporary name, then rename).

    An interrupted write never leaves a truncated file under the final name. A volume read from
    a NIfTI file is written with that file's sform and qform (each with its code, moved onto the
    output's grid), spatial and time units (the affine is converted back from mm), intent and
    description (:mod:`volgan.io.nifti_header`); any other volume in mm, its affine as an
    "aligned" sform and an "unknown" qform. The values' units go in a comment extension, and in
    the description when the input had none.
    """
    path = Path(path)
    if not is_nifti(path):
        raise VolumeError(path, "output name must end in .nii or .nii.gz")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.exists():
        raise VolumeError(parent, "output folder does not exist")
    if not os.access(parent, os.W_OK):
        raise VolumeError(parent, "output folder is not writable")
    img = nib.Nifti1Image(np.asarray(volume.array).astype(dtype, copy=False), volume.affine)
    info = volume.meta.get("nifti")
    descrip = ""
    if isinstance(info, NiftiHeaderInfo):
        apply_header_info(img, info, np.asarray(volume.affine, dtype=np.float64))
        descrip = info.descrip
    else:
        img.header.set_xyzt_units("mm", "sec")
    tag = f"{UNITS_TAG}{volume.units}"
    if not descrip or descrip.startswith(UNITS_TAG):
        descrip = tag
    img.header["descrip"] = descrip.encode("latin-1", "replace")[:79]
    img.header.extensions.append(nib.nifti1.Nifti1Extension(COMMENT_ECODE, tag.encode("utf-8")))
    tmp = temporary_path(path)
    try:
        nib.save(img, tmp)
        os.replace(tmp, path)
    except OSError as err:
        raise VolumeError(path, f"could not be written ({err})") from err
    finally:
        if tmp.exists():
            tmp.unlink()
    return path
