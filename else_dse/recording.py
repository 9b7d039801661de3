"""Recordings: the input tensors of a network's synaptic layers, with geometry.

A :class:`Recording` holds the ordered layers of a network and one tensor per
recorded layer input, layout ``(frame, channel, y, x)``, in an
:class:`xarray.Dataset`. It round-trips through NetCDF (h5netcdf) and zarr.
:meth:`Recording.quantize` turns it into integer codes as ``semantics.md``
defines (per tensor, over all frames).
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Mapping, Sequence

import numpy as np
import xarray as xr

from .workload import GeometryError, Layer, layers_by_name

__all__ = ["RecordingError", "Recording", "QuantizedRecording", "open_recording", "quantize_array",
           "codes_of", "dequantize_codes"]

FORMAT_VERSION = 1


class RecordingError(ValueError):
    """A bad recording: missing tensor, wrong shape, non-finite values, bad file."""


def _var_name(tensor: str, taken: set[str]) -> str:
    base = re.sub(r"[^A-Za-z0-9_]", "_", tensor) or "tensor"
    if base[0].isdigit():
        base = "t_" + base
    name, i = base, 1
    while name in taken:
        name, i = f"{base}_{i}", i + 1
    taken.add(name)
    return name


def _check_layers(layers: Sequence[Layer]) -> tuple[Layer, ...]:
    layers = tuple(layers)
    if not layers:
        raise RecordingError("a recording needs at least one layer")
    for layer in layers:
        if not isinstance(layer, Layer):
            raise RecordingError(f"layers must be else_dse.Layer objects, got {type(layer).__name__}")
    layers_by_name(layers)
    return layers


def _check_array(name: str, a: Any) -> np.ndarray:
    """One tensor as a C-contiguous array: 4-D, float or integer, non-empty, finite."""
    a = np.asarray(a)
    if a.dtype == bool:
        a = a.astype(np.uint8)
    _check_kind(name, a.shape, a.dtype)
    if np.issubdtype(a.dtype, np.floating) and not np.isfinite(a).all():
        _raise_nonfinite(name, int(np.size(a) - np.isfinite(a).sum()))
    return np.ascontiguousarray(a)


def _check_kind(name: str, shape: tuple[int, ...], dtype: np.dtype) -> None:
    if len(shape) != 4:
        raise RecordingError(f"tensor {name!r}: must be 4-D (frame, channel, y, x), got shape {shape}")
    if not (np.issubdtype(dtype, np.floating) or np.issubdtype(dtype, np.integer)):
        raise RecordingError(f"tensor {name!r}: dtype must be float or integer, got {dtype}")
    if shape[0] < 1 or 0 in shape:
        raise RecordingError(f"tensor {name!r}: empty shape {shape}")


def _raise_nonfinite(name: str, bad: int) -> None:
    raise RecordingError(f"tensor {name!r}: {bad} non-finite values (NaN or inf); values must be finite")


def _check_geometry(layers: tuple[Layer, ...], shapes: Mapping[str, tuple[int, ...]]) -> None:
    """Every tensor has the same frames, every layer's input is there with its
    ``input_shape``, and every tensor is read by some layer."""
    n_frames = None
    for name, shape in shapes.items():
        if n_frames is None:
            n_frames = shape[0]
        elif shape[0] != n_frames:
            raise RecordingError(f"tensor {name!r}: {shape[0]} frames, other tensors have {n_frames}")
    for layer in layers:
        if layer.input not in shapes:
            raise RecordingError(
                f"layer {layer.name!r}: input tensor {layer.input!r} is not among the arrays {sorted(shapes)}")
        shape = shapes[layer.input][1:]
        if tuple(shape) != layer.input_shape:
            raise RecordingError(
                f"layer {layer.name!r}: input_shape {layer.input_shape} does not match tensor "
                f"{layer.input!r} of shape (channel, y, x) = {tuple(shape)}")
    unused = set(shapes) - {layer.input for layer in layers}
    if unused:
        raise RecordingError(f"tensors {sorted(unused)} are read by no layer")


def _check_arrays(layers: tuple[Layer, ...], arrays: Mapping[str, Any]) -> dict[str, np.ndarray]:
    out = {name: _check_array(name, a) for name, a in arrays.items()}
    _check_geometry(layers, {name: a.shape for name, a in out.items()})
    return out


def _check_lazy(layers: tuple[Layer, ...], ds: xr.Dataset) -> None:
    """:func:`_check_arrays` without reading values (a chunked recording):
    shapes, dtypes and geometry now; finiteness is checked by the range pass of
    :meth:`Recording.quantize`."""
    shapes = {}
    for var in ds.data_vars.values():
        name = str(var.attrs["tensor"])
        _check_kind(name, var.shape, var.dtype)
        shapes[name] = var.shape
    _check_geometry(layers, shapes)


def _build_dataset(layers: tuple[Layer, ...], arrays: dict[str, np.ndarray],
                   attrs: Mapping[str, Any] | None, frame_labels: Sequence[str] | None) -> xr.Dataset:
    taken: set[str] = set()
    variables = {}
    n_frames = next(iter(arrays.values())).shape[0]
    for tensor, a in arrays.items():
        v = _var_name(tensor, taken)
        dims = ("frame", f"{v}_channel", f"{v}_y", f"{v}_x")
        variables[v] = xr.Variable(dims, a, attrs={"tensor": tensor})
    coords = {"frame": np.arange(n_frames)}
    if frame_labels is not None:
        if len(frame_labels) != n_frames:
            raise RecordingError(f"frame_labels has {len(frame_labels)} entries for {n_frames} frames")
        coords["frame_label"] = ("frame", np.asarray([str(s) for s in frame_labels], dtype=object))
    ds = xr.Dataset(variables, coords=coords)
    ds.attrs.update({k: v for k, v in (attrs or {}).items()})
    ds.attrs["layers"] = json.dumps([layer.to_dict() for layer in layers])
    ds.attrs["else_dse_format"] = FORMAT_VERSION
    return ds


@dataclass(frozen=True)
class Recording:
    """Ordered layers and their recorded input tensors (float), backed by xarray.

    >>> import numpy as np, else_dse as ed
    >>> layer = ed.Layer("c1", "x", "conv", 1, 2, kernel=3, padding=1, input_shape=(1, 4, 4))
    >>> rec = ed.Recording.from_arrays([layer], {"x": np.ones((2, 1, 4, 4), np.float32)})
    >>> rec.n_frames, rec.tensor("x").shape
    (2, (2, 1, 4, 4))
    """

    layers: tuple[Layer, ...]
    data: xr.Dataset

    @classmethod
    def from_arrays(cls, layers: Sequence[Layer], arrays: Mapping[str, Any], *,
                    attrs: Mapping[str, Any] | None = None,
                    frame_labels: Sequence[str] | None = None) -> "Recording":
        """Validate geometry and arrays (``{tensor name: (frame, C, H, W)}``) and build a recording."""
        layers = _check_layers(layers)
        checked = _check_arrays(layers, arrays)
        return cls(layers, _build_dataset(layers, checked, attrs, frame_labels))

    # ---- access ------------------------------------------------------------
    @property
    def tensors(self) -> tuple[str, ...]:
        """Recorded tensor names, in first-use order."""
        return tuple(dict.fromkeys(layer.input for layer in self.layers))

    @property
    def n_frames(self) -> int:
        """Number of frames."""
        return int(self.data.sizes["frame"])

    @property
    def attrs(self) -> dict[str, Any]:
        """The recording's attributes (provenance, quantization), without the layer geometry."""
        return {k: v for k, v in self.data.attrs.items() if k not in ("layers", "else_dse_format")}

    def layer(self, name: str) -> Layer:
        """The layer called ``name`` (KeyError naming the layers if there is none)."""
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(f"no layer {name!r}; layers are {[layer.name for layer in self.layers]}")

    @functools.cached_property
    def _vars(self) -> dict[str, str]:
        """Tensor name -> dataset variable name (variables carry the tensor name as an attribute)."""
        return {str(da.attrs["tensor"]): str(v) for v, da in self.data.data_vars.items()}

    def _var(self, tensor: str) -> str:
        try:
            return self._vars[tensor]
        except KeyError:
            raise KeyError(f"no tensor {tensor!r}; tensors are {list(self.tensors)}") from None

    def tensor(self, name: str) -> np.ndarray:
        """The recorded array ``(frame, channel, y, x)`` of tensor ``name``."""
        return np.asarray(self.data[self._var(name)].values)

    @property
    def frame_chunks(self) -> tuple[int, ...] | None:
        """Frames per chunk of a chunked (dask-backed) recording; None in memory."""
        chunks = self.data.chunks   # no DataArray per variable: this is on count_events' path
        if "frame" not in chunks:
            return None
        return tuple(int(n) for n in chunks["frame"])

    def chunk(self, frames: int) -> "Recording":
        """The same recording backed by dask arrays in chunks of ``frames`` frames."""
        return type(self)(self.layers, _chunked(self.data, _check_chunks({"frame": frames})))

    def load(self) -> "Recording":
        """The same recording with every tensor in memory."""
        return type(self)(self.layers, self.data.compute())

    def select_frames(self, frames: Sequence[int] | slice) -> "Recording":
        """A recording restricted to some frames (in the given order)."""
        idx = frames if isinstance(frames, slice) else list(frames)
        return type(self)(self.layers, self.data.isel(frame=idx))

    def sample_frames(self, k: int) -> "Recording":
        """A recording of ``k`` evenly spaced frames, the first and last included (every frame
        when ``k`` is 0 or at least :attr:`n_frames`)."""
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 0:
            raise ValueError(f"sample_frames: k must be an int >= 0 (0: every frame), got {k!r}")
        if k == 0 or k >= self.n_frames:
            return self
        idx = np.linspace(0, self.n_frames - 1, k).round().astype(int)   # k < n_frames: steps > 1, distinct
        return self.select_frames(idx.tolist())

    def select_layers(self, names: Sequence[str]) -> "Recording":
        """A recording of some layers (network order kept) and the tensors they read."""
        keep = tuple(layer for layer in self.layers if layer.name in set(names))
        missing = set(names) - {layer.name for layer in keep}
        if missing:
            raise KeyError(f"no layers {sorted(missing)}")
        ds = self.data[[self._var(t) for t in dict.fromkeys(layer.input for layer in keep)]]
        ds.attrs = {**self.data.attrs, "layers": json.dumps([layer.to_dict() for layer in keep])}
        return type(self)(keep, ds)

    # ---- storage -----------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write to ``*.nc`` (NetCDF4 via h5netcdf, zlib + shuffle) or ``*.zarr`` (zarr v3)."""
        path = Path(path)
        ds = self.data.copy()
        fmt = _format(path)
        if fmt == "netcdf":
            encoding = {}
            for v, da in ds.data_vars.items():
                if da.dtype == np.float16:  # netCDF has no float16: store float32, restore on open
                    ds[v] = da.astype(np.float32)
                    ds[v].attrs["stored_dtype"] = "float16"
                encoding[v] = {"zlib": True, "complevel": 4, "shuffle": True,
                               "chunksizes": (1,) + da.shape[1:]}
            if "frame_label" in ds.coords:
                ds.coords["frame_label"] = ds.coords["frame_label"].astype(str)
            ds.to_netcdf(path, engine="h5netcdf", encoding=encoding, invalid_netcdf=False)
        else:
            if "frame_label" in ds.coords:  # zarr v3 has no stable string dtype: keep labels as JSON
                ds.attrs["frame_labels"] = json.dumps([str(v) for v in ds["frame_label"].values])
                ds = ds.drop_vars("frame_label")
            encoding = {v: {"chunks": (1,) + da.shape[1:]} for v, da in ds.data_vars.items()}
            ds.to_zarr(path, mode="w", zarr_format=3, consolidated=False, encoding=encoding)
        return path

    def quantize(self, bits: int = 8, calibration: Literal["max", "percentile"] = "max",
                 percentile: float = 99.99) -> "QuantizedRecording":
        """Integer codes per tensor over all frames (``semantics.md``, Tensors and quantization)."""
        return QuantizedRecording.from_recording(self, bits, calibration, percentile)


def _format(path: Path) -> str:
    if path.suffix in (".nc", ".nc4", ".netcdf", ".h5"):
        return "netcdf"
    if path.suffix == ".zarr":
        return "zarr"
    raise RecordingError(f"{path}: unknown recording format; use a .nc (NetCDF) or .zarr path")


def _chunked(ds: xr.Dataset, frames: int) -> xr.Dataset:
    """``ds`` with every tensor in dask chunks of ``frames`` whole frames (coords as they are)."""
    out = ds.copy()
    for v, var in ds.data_vars.items():
        out[v] = var.chunk({d: (frames if d == "frame" else -1) for d in var.dims})
    return out


def _check_chunks(chunks: Any) -> int | None:
    """The frames per chunk of ``open_recording(chunks={"frame": k})``."""
    if chunks is None:
        return None
    if (not isinstance(chunks, Mapping) or set(chunks) != {"frame"}
            or isinstance(chunks["frame"], bool) or not isinstance(chunks["frame"], (int, np.integer))
            or chunks["frame"] < 1):
        raise RecordingError(f"open_recording: chunks must be {{'frame': k}} with an int k >= 1 "
                             f"(frames per chunk), got {chunks!r}")
    return int(chunks["frame"])


def _read(path: Path, fmt: str, frames: int | None) -> xr.Dataset:
    """The stored dataset: loaded, or lazy (dask) in chunks of ``frames`` frames."""
    chunks = None if frames is None else {"frame": frames}
    if fmt == "netcdf":
        if chunks is not None:
            return xr.open_dataset(path, engine="h5netcdf", chunks=chunks)
        with xr.open_dataset(path, engine="h5netcdf") as ds:
            return ds.load()
    if chunks is not None:
        return xr.open_zarr(path, consolidated=False, zarr_format=3, chunks=chunks)
    with xr.open_zarr(path, consolidated=False, zarr_format=3) as ds:
        return ds.load()


def open_recording(path: str | Path, chunks: Mapping[str, int] | None = None
                   ) -> "Recording | QuantizedRecording":
    """Open a recording saved by :meth:`Recording.save` (NetCDF or zarr).

    ``chunks={"frame": k}`` opens it lazily, backed by dask arrays in chunks of
    ``k`` frames (each chunk holds every channel and position): ``quantize``,
    ``count_events`` and ``event_curve`` then stream it chunk by chunk, in
    memory bounded by the chunk, with the same results as in memory.
    """
    path = Path(path)
    frames = _check_chunks(chunks)
    if not path.exists():
        raise RecordingError(f"{path}: no such recording file")
    fmt = _format(path)
    try:
        ds = _read(path, fmt, frames)
    except Exception as exc:  # noqa: BLE001 - any reader failure is a bad file
        raise RecordingError(f"{path}: cannot be read as {fmt}: {exc}") from exc
    if "layers" not in ds.attrs:
        raise RecordingError(f"{path}: not an else-dse recording (no 'layers' attribute)")
    try:
        layers = tuple(Layer.from_dict(d) for d in json.loads(ds.attrs["layers"]))
    except (GeometryError, TypeError, json.JSONDecodeError) as exc:
        raise RecordingError(f"{path}: bad layer geometry: {exc}") from exc
    for v in list(ds.data_vars):
        stored = ds[v].attrs.pop("stored_dtype", None)
        if stored:
            ds[v] = ds[v].astype(stored)
    if "frame_labels" in ds.attrs:
        ds.coords["frame_label"] = ("frame", np.asarray(json.loads(ds.attrs.pop("frame_labels")), dtype=object))
    if "frame_label" in ds.coords:
        ds.coords["frame_label"] = ds.coords["frame_label"].astype(object)
    cls: type[Recording] = QuantizedRecording if "bits" in ds.attrs else Recording
    try:
        if frames is None:
            _check_arrays(_check_layers(layers), {ds[v].attrs["tensor"]: ds[v].values for v in ds.data_vars})
        else:
            _check_lazy(_check_layers(layers), ds)
            ds = _chunked(ds, frames)
    except (RecordingError, GeometryError) as exc:
        raise RecordingError(f"{path}: {exc}") from exc
    return cls(layers, ds)


# ---- quantization -----------------------------------------------------------

def quantize_array(x: np.ndarray, bits: int = 8, calibration: str = "max",
                   percentile: float = 99.99) -> tuple[np.ndarray, float, int]:
    """Per-tensor affine quantization of ``semantics.md``; returns ``(codes, scale, zero_point)``.

    ``lo = min(0, min x)``, ``hi = max x``, ``scale = (hi - lo) / (2**bits - 1)``,
    ``zero_point = round(-lo / scale)``, ``code = clip(round(x / scale) + zero_point, 0, 2**bits - 1)``.
    Arithmetic is float64; ``round`` is round-half-to-even (``numpy.rint``). An all-zero
    tensor gets ``scale = 1.0``, ``zero_point = 0`` and all-zero codes. ``hi`` is taken as
    ``max(0, max x)`` so that 0.0 always has a code (identical to the formula whenever
    ``max x >= 0``, e.g. after ReLU); percentile calibration clips ``lo`` and ``hi`` to the
    ``100 - percentile`` and ``percentile`` percentiles, and keeps the full range when both
    are 0 (a tensor sparser than the percentile).
    """
    levels, dtype = _check_quant(bits, calibration)
    x = np.asarray(x)
    if not np.any(x):
        return np.zeros(x.shape, dtype=dtype), 1.0, 0
    lo, hi = min(0.0, float(x.min())), max(0.0, float(x.max()))
    _check_percentile(calibration, percentile)
    if calibration == "percentile":
        lo, hi = _clip_range(lo, hi, float(np.percentile(x, 100.0 - percentile)),
                             float(np.percentile(x, percentile)))
    params = _affine(lo, hi, levels)
    if params is None:  # range below float64 resolution (subnormal values): nothing to code
        return np.zeros(x.shape, dtype=dtype), 1.0, 0
    return codes_of(x, *params, int(bits)), *params


def _check_percentile(calibration: str, percentile: Any) -> None:
    if calibration == "percentile" and not 50.0 < percentile <= 100.0:
        raise ValueError(f"percentile must be in (50, 100], got {percentile!r}")


def _clip_range(lo: float, hi: float, p_lo: float, p_hi: float) -> tuple[float, float]:
    """The range of percentile calibration: ``[min(0, p_lo), max(0, p_hi)]``, or the full
    ``[lo, hi]`` when both are 0 (a tensor sparser than the percentile)."""
    p_lo, p_hi = min(0.0, p_lo), max(0.0, p_hi)
    return (p_lo, p_hi) if p_hi > p_lo else (lo, hi)


def _chunked_clip(ds: xr.Dataset, ranges: Mapping[str, tuple[float, float, int]],
                  percentile: float) -> dict[str, tuple[float, float]]:
    """``{variable: (lo, hi)}`` of percentile calibration of a chunked dataset whose full
    ranges are ``ranges``: exact percentiles in streaming passes (:mod:`else_dse.quantiles`)."""
    from .quantiles import chunked_percentiles
    got = chunked_percentiles(ds, [100.0 - percentile, percentile], "quantize: percentiles")
    return {v: _clip_range(min(0.0, ranges[v][0]), max(0.0, ranges[v][1]), p_lo, p_hi)
            for v, (p_lo, p_hi) in got.items()}


def codes_of(x: np.ndarray, scale: float, zero_point: int, bits: int) -> np.ndarray:
    """Codes of ``x`` with a given (pinned) scale and zero point:
    ``clip(round(x / scale) + zero_point, 0, 2**bits - 1)`` in float64, round half to
    even; uint8 for ``bits <= 8``, else uint16 (the arithmetic of :func:`quantize_array`).
    A float32 ``x`` whose memory is contiguous in some axis order (e.g. a transposed
    view) is read in place and the codes have that memory order too."""
    levels = 2 ** int(bits) - 1
    dtype = np.uint8 if bits <= 8 else np.uint16
    x = np.asarray(x)
    if x.dtype == np.float32 and scale > 0:  # the same arithmetic in one pass (else_dse._kernels)
        from . import _kernels

        src, back = _memory_order(x)
        out = np.empty(src.shape, dtype)
        _kernels.quantize_codes(src.ravel(), float(scale), int(zero_point), levels, out.ravel())
        return out.transpose(back)
    return np.clip(np.rint(np.asarray(x, dtype=np.float64) / scale) + zero_point, 0, levels).astype(dtype)


def _memory_order(x: np.ndarray) -> tuple[np.ndarray, tuple[int, ...]]:
    """``x`` with its axes in memory order (C-contiguous: a view when the memory is
    contiguous in some axis order, else a copy) and the axes that give ``x`` back."""
    if x.flags.c_contiguous:
        return x, tuple(range(x.ndim))
    perm = sorted(range(x.ndim), key=lambda k: -abs(x.strides[k]))
    src = x.transpose(perm)
    if not src.flags.c_contiguous:
        return np.ascontiguousarray(x), tuple(range(x.ndim))
    back = [0] * x.ndim
    for k, p in enumerate(perm):
        back[p] = k
    return src, tuple(back)


def dequantize_codes(signed: np.ndarray, scale: float, out: np.ndarray | None = None) -> np.ndarray:
    """Float32 values of signed codes ``X = code - zero_point``: ``X * scale`` in float64,
    written to ``out`` (float32, the shape of ``signed``, any memory layout) if given."""
    signed = np.asarray(signed)
    if out is None:
        out = np.empty(signed.shape, np.float32)
    elif out.dtype != np.float32 or out.shape != signed.shape:
        raise ValueError(f"dequantize_codes: out must be float32 of shape {signed.shape}, "
                         f"got {out.dtype} {out.shape}")
    if signed.dtype == np.int32 and signed.ndim >= 1 and signed.size:  # one pass (else_dse._kernels)
        from . import _kernels

        planes = np.ascontiguousarray(signed).reshape(signed.shape[0], -1)
        if out.flags.c_contiguous:
            _kernels.dequantize_values(planes, float(scale), out.reshape(-1))
            return out
        to_last = (*range(1, signed.ndim), 0)          # out's memory holds axis 0 last (channels last)
        mem = out.transpose(to_last)
        if mem.flags.c_contiguous:
            _kernels.dequantize_values(planes, float(scale), mem.reshape(-1), True)
            return out
    # numpy in float64, cast once to float32 (strided out: no separate transpose)
    np.multiply(signed, np.float64(scale), out=out, dtype=np.float64, casting="unsafe")
    return out


def _check_quant(bits: Any, calibration: Any) -> tuple[int, type]:
    """The top code ``2**bits - 1`` and the code dtype, after checking the arguments."""
    if not isinstance(bits, (int, np.integer)) or not 2 <= bits <= 16:
        raise ValueError(f"bits must be an int in [2, 16], got {bits!r}")
    if calibration not in ("max", "percentile"):
        raise ValueError(f"calibration must be 'max' or 'percentile', got {calibration!r}")
    return 2 ** int(bits) - 1, (np.uint8 if bits <= 8 else np.uint16)


def _affine(lo: float, hi: float, levels: int) -> tuple[float, int] | None:
    """``(scale, zero_point)`` of the range ``[lo, hi]`` (``lo <= 0 <= hi``); None when
    the range is empty or below float64 resolution (every code is then 0, with
    ``scale = 1.0``, ``zero_point = 0``)."""
    scale = (hi - lo) / levels
    if not scale > 0.0:
        return None
    return float(scale), int(np.rint(-lo / scale))


@dataclass(frozen=True)
class QuantizedRecording(Recording):
    """A recording of integer codes with per-tensor ``scale`` and ``zero_point``.

    ``signed(t)`` gives ``X = code - zero_point`` (int16 for bits <= 15), the array
    every scheme counts events on.
    """

    @classmethod
    def from_recording(cls, rec: Recording, bits: int = 8, calibration: str = "max",
                       percentile: float = 99.99) -> "QuantizedRecording":
        """Codes of every tensor of ``rec`` (:meth:`Recording.quantize`; chunked recordings stay lazy)."""
        if rec.frame_chunks is not None:
            return cls._from_chunked(rec, bits, calibration, percentile)
        ds = rec.data.copy()
        coded = {}
        for v in list(ds.data_vars):
            codes, scale, zp = quantize_array(ds[v].values, bits, calibration, percentile)
            coded[v] = xr.Variable(ds[v].dims, codes, attrs={**ds[v].attrs, "scale": scale, "zero_point": zp})
        ds = ds.assign(coded)          # one merge: a variable at a time re-aligns the Dataset each time
        ds.attrs.update({"bits": int(bits), "calibration": calibration})
        if calibration == "percentile":
            ds.attrs["percentile"] = float(percentile)
        return cls(rec.layers, ds)

    @classmethod
    def _from_chunked(cls, rec: Recording, bits: int, calibration: str,
                      percentile: float) -> "QuantizedRecording":
        """:meth:`from_recording` of a chunked recording: the global range of each
        tensor in one streaming pass (and, for percentile calibration, its exact
        percentiles in ``bits / 16`` more), then lazy codes (the same formula per chunk)."""
        levels, dtype = _check_quant(bits, calibration)
        _check_percentile(calibration, percentile)
        from .stream import tensor_ranges
        ds = rec.data.copy()
        ranges = tensor_ranges(ds, "quantize: range")
        for v, (_, _, bad) in ranges.items():
            if bad:
                _raise_nonfinite(str(ds[v].attrs["tensor"]), bad)
        clipped = _chunked_clip(ds, ranges, percentile) if calibration == "percentile" else {}
        coded = {}
        for v, (lo, hi, _) in ranges.items():
            var = ds[v]
            lo, hi = clipped.get(v, (min(0.0, lo), max(0.0, hi)))
            params = _affine(lo, hi, levels)
            if params is None:   # no range: every code 0, as quantize_array
                codes = var.data.map_blocks(np.zeros_like, dtype=dtype).astype(dtype)
                params = (1.0, 0)
            else:
                codes = var.data.map_blocks(codes_of, *params, int(bits), dtype=dtype)
            coded[v] = xr.Variable(var.dims, codes, attrs={**var.attrs, "scale": params[0],
                                                           "zero_point": params[1]})
        ds = ds.assign(coded)
        ds.attrs.update({"bits": int(bits), "calibration": calibration})
        if calibration == "percentile":
            ds.attrs["percentile"] = float(percentile)
        return cls(rec.layers, ds)

    @property
    def bits(self) -> int:
        """Code width in bits."""
        return int(self.data.attrs["bits"])

    @property
    def calibration(self) -> str:
        """How the ranges were calibrated: ``"max"`` or ``"percentile"``."""
        return str(self.data.attrs["calibration"])

    def scale(self, tensor: str) -> float:
        """The quantization step of ``tensor``."""
        return float(self.data[self._var(tensor)].attrs["scale"])

    def zero_point(self, tensor: str) -> int:
        """The code of 0.0 in ``tensor``."""
        return int(self.data[self._var(tensor)].attrs["zero_point"])

    def signed(self, tensor: str) -> np.ndarray:
        """``X = code - zero_point``, C-contiguous, int16 (int32 for 16-bit codes)."""
        dtype = np.int16 if self.bits <= 15 else np.int32
        return np.ascontiguousarray(self.tensor(tensor).astype(dtype) - dtype(self.zero_point(tensor)))

    def dequantize(self, tensor: str) -> np.ndarray:
        """Float32 values of ``tensor``'s codes (``(code - zero_point) * scale``)."""
        return dequantize_codes(self.signed(tensor), self.scale(tensor))

    def with_codes(self, codes: Mapping[str, np.ndarray]) -> "QuantizedRecording":
        """This recording with other codes of every tensor (same frames, shapes, scales
        and zero points): e.g. what a network sends with scales pinned from this one."""
        if set(codes) != set(self.tensors):
            raise RecordingError(f"with_codes: needs codes of exactly the tensors {sorted(self.tensors)}, "
                                 f"got {sorted(codes)}")
        ds = self.data
        coded = {}
        for tensor, c in codes.items():
            var = self._var(tensor)
            c = np.asarray(c)
            if c.shape != ds[var].shape or c.dtype != ds[var].dtype:
                raise RecordingError(f"with_codes: tensor {tensor!r}: codes {c.dtype} {c.shape}, the "
                                     f"recording holds {ds[var].dtype} {ds[var].shape}")
            coded[var] = xr.Variable(ds[var].dims, c, attrs=ds[var].attrs)
        return QuantizedRecording(self.layers, ds.assign(coded))   # one merge, not one per tensor

    def quantize(self, *args: Any, **kwargs: Any) -> "QuantizedRecording":
        """Refused: the recording is already quantized."""
        raise RecordingError("this recording is already quantized "
                             f"({self.bits} bits, {self.calibration} calibration)")

    @classmethod
    def from_arrays(cls, *args: Any, **kwargs: Any) -> "QuantizedRecording":
        """Refused: build a :class:`Recording` from float arrays and quantize it."""
        raise RecordingError("build a Recording from float arrays and call .quantize()")
