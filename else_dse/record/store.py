"""Compact storage of float recordings as CF-packed integer codes in NetCDF.

Float activations of real networks do not compress (non-zero mantissas are
noise). :func:`save_packed` stores each tensor as the ``bits``-bit codes of
``semantics.md`` (:func:`else_dse.recording.quantize_array`, max calibration)
with the CF attributes ``scale_factor = scale`` and ``add_offset = -zero_point * scale``
(float32, ``add_offset`` computed so that the zero code decodes to exactly 0.0).
Any NetCDF reader, and :func:`else_dse.open_recording` through xarray, decodes
them back to float32 ``(code - zero_point) * scale`` (within a few float32 ulp; the
zero code decodes to exactly 0.0).

Consequence: ``open_recording(path).quantize(bits)`` reproduces exactly the codes
the original float recording gives at the same ``bits`` with max calibration
(checked by :func:`check_packed`); other bit widths and percentile calibration
see the values on the ``bits``-bit grid (error <= scale/2 per element).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import xarray as xr

from ..recording import Recording, open_recording, quantize_array

__all__ = ["save_packed", "check_packed"]


def save_packed(rec: Recording, path: str | Path, bits: int = 8, complevel: int = 9) -> Path:
    """Write ``rec`` to ``path`` (``.nc``) with every tensor packed to ``bits``-bit codes."""
    if not 2 <= int(bits) <= 16:
        raise ValueError(f"bits must be in [2, 16], got {bits!r}")
    path = Path(path)
    if path.suffix != ".nc":
        raise ValueError(f"{path}: packed storage is NetCDF only; use a .nc path")
    ds = rec.data.copy()
    dtype = np.uint8 if bits <= 8 else np.uint16
    encoding = {}
    for v in list(ds.data_vars):
        codes, scale, zp = quantize_array(ds[v].values, int(bits), "max")
        sf = np.float32(scale)
        # the codes are written as they are (xarray's own encoder would round in float32,
        # which moves values near a half step); readers decode code * scale_factor + add_offset
        attrs = {**ds[v].attrs, "scale_factor": sf, "add_offset": -(np.float32(zp) * sf), "packed_bits": int(bits)}
        ds[v] = xr.Variable(ds[v].dims, codes.astype(dtype), attrs=attrs)
        encoding[v] = {"zlib": True, "complevel": complevel, "chunksizes": (1,) + codes.shape[1:]}
    if "frame_label" in ds.coords:
        ds.coords["frame_label"] = ds.coords["frame_label"].astype(str)
    ds.attrs["storage"] = (f"CF-packed {bits}-bit codes (semantics.md quantization, max calibration): "
                           "value = code * scale_factor + add_offset")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # xarray warns that floats without _FillValue go to integers
        ds.to_netcdf(path, engine="h5netcdf", encoding=encoding)
    return path


def check_packed(rec: Recording, path: str | Path, bits: int = 8) -> None:
    """Assert that ``path`` decodes to the ``bits``-bit grid of ``rec`` with identical codes and exact zeros."""
    back = open_recording(path)
    if back.layers != rec.layers:
        raise AssertionError(f"{path}: layers differ after the round trip")
    q = back.quantize(bits)
    for t in rec.tensors:
        codes, scale, zp = quantize_array(rec.tensor(t), bits, "max")
        x = back.tensor(t)
        if x.dtype != np.float32:
            raise AssertionError(f"{path}: tensor {t!r} decodes to {x.dtype}, expected float32")
        if not np.array_equal(q.tensor(t), codes) or q.zero_point(t) != zp:
            raise AssertionError(f"{path}: tensor {t!r}: {bits}-bit codes differ after the round trip")
        if not np.array_equal(x == 0, codes == zp):
            raise AssertionError(f"{path}: tensor {t!r}: zeros are not exact after the round trip")
        err = float(np.abs(x.astype(np.float64) - rec.tensor(t)).max())
        if err > scale / 2 + 4 * np.finfo(np.float32).eps * float(np.abs(x).max()):  # float32 decoding
            raise AssertionError(f"{path}: tensor {t!r}: error {err} exceeds scale/2 = {scale / 2}")
