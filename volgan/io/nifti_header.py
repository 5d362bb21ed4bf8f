"""What a NIfTI header says besides the voxels: kept from reading to writing, with spatial units in mm.

A volume's affine is in millimetres inside volgan (spacing checks, target grids, registration).
NIfTI files may be in metres or microns (``xyzt_units``): :func:`header_info` converts the affine
to mm on reading and records the file's units, coordinate codes, both forms, intent and
description; :func:`apply_header_info` writes them back, in the file's units, onto an output
whose grid may differ from the input's (e.g. resampled): the change of voxel grid, taken from the
affine, is applied to the qform and the sform alike, so each keeps its own space and code.
"""

from __future__ import annotations

from dataclasses import dataclass

import nibabel as nib
import numpy as np

MM_PER_UNIT = {"meter": 1000.0, "mm": 1.0, "micron": 0.001, "unknown": 1.0}  # unknown: mm, as readers assume


def to_mm(affine: np.ndarray, unit: str) -> np.ndarray:
    """``affine`` (voxel to world in ``unit``) with world coordinates in mm."""
    out = np.array(affine, dtype=np.float64)
    out[:3, :] *= MM_PER_UNIT.get(unit, 1.0)
    return out


def from_mm(affine: np.ndarray, unit: str) -> np.ndarray:
    """``affine`` (voxel to world in mm) with world coordinates in ``unit``."""
    out = np.array(affine, dtype=np.float64)
    out[:3, :] /= MM_PER_UNIT.get(unit, 1.0)
    return out


@dataclass(frozen=True, eq=False)
class NiftiHeaderInfo:
    """The header fields volgan keeps on outputs, with matrices in mm.

    Attributes:
        affine: the affine the volume was read with (sform, else qform, else the pixdim fallback).
        sform, qform: the two forms as stored (the matrix is kept even when its code is 0).
        sform_code, qform_code: their NIfTI codes (1 scanner, 2 aligned, 3 Talairach, 4 MNI, ...).
        spatial_unit, time_unit: the file's ``xyzt_units`` (e.g. ``"micron"``, ``"sec"``).
        intent: ``(code name, parameters, intent name)`` as nibabel's ``get_intent`` gives it.
        descrip: the description field.
    """

    affine: np.ndarray
    sform: np.ndarray
    qform: np.ndarray
    sform_code: int
    qform_code: int
    spatial_unit: str
    time_unit: str
    intent: tuple
    descrip: str


def header_info(header: nib.Nifti1Header, affine: np.ndarray) -> NiftiHeaderInfo:
    """The fields of ``header`` to keep, for a volume read with ``affine`` (in the file's units)."""
    spatial, temporal = header.get_xyzt_units()
    spatial = spatial if spatial in MM_PER_UNIT else "unknown"
    descrip = header["descrip"].tobytes().split(b"\x00")[0].decode("latin-1")
    try:
        intent = header.get_intent()
    except KeyError:  # an intent code nibabel does not know: not carried
        intent = ("none", (), "")
    return NiftiHeaderInfo(
        affine=to_mm(affine, spatial),
        sform=to_mm(header.get_sform(), spatial),
        qform=to_mm(header.get_qform(), spatial),
        sform_code=int(header["sform_code"]),
        qform_code=int(header["qform_code"]),
        spatial_unit=spatial,
        time_unit=temporal,
        intent=intent,
        descrip=descrip,
    )


def apply_header_info(img: nib.Nifti1Image, info: NiftiHeaderInfo, affine: np.ndarray) -> None:
    """Set ``img``'s forms, codes, units and intent from ``info`` for a volume whose affine (mm) is
    ``affine``. The description is left to the caller."""
    try:
        grid_change = np.linalg.solve(info.affine, affine)  # output voxel -> input voxel indices
    except np.linalg.LinAlgError:  # a degenerate input affine: both forms get the output's affine
        grid_change = None
    img.header.set_xyzt_units(info.spatial_unit, info.time_unit)
    for form, code, setter in ((info.qform, info.qform_code, img.set_qform), (info.sform, info.sform_code, img.set_sform)):
        matrix = form @ grid_change if code > 0 and grid_change is not None else affine
        setter(from_mm(matrix, info.spatial_unit), code)
    code, params, name = info.intent
    if code != "none":
        img.header.set_intent(code, params, name)
