"""Closed-loop replay: run the real network with a plan applied at every synaptic layer's input.

Each synaptic layer computes on the dequantized receiver reconstruction of its
input under its scheme (``docs/semantics.md``, "Replay"), so suppression at
one layer changes the input of the next; the recording holds the inputs the
deployed network actually sends, and the outputs what it computes.

>>> from else_dse.record import replay, media                  # doctest: +SKIP
>>> import else_dse as ed                                      # doctest: +SKIP
>>> rep = replay("data/models/face_detection_short_range.tflite",
...              media.video_frames("carphone", 16), ed.LineDelta(threshold=2),
...              value_range=(-1, 1))                          # doctest: +SKIP
>>> rep.stats["events"].sum(), rep.outputs.keys()              # doctest: +SKIP
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Literal, Mapping, Sequence

import numpy as np
import xarray as xr

from ..events import TemporalState, count_events, reconstruct
from ..recording import QuantizedRecording, Recording, _var_name, codes_of, dequantize_codes
from ..schemes import Scheme, SchemeOrPlan, as_plan
from ..workload import Layer
from ._common import RecorderError, model_frames, progress
from .media import Preprocess

if TYPE_CHECKING:
    from .segments import SegmentedModel

__all__ = ["Replay", "replay", "open_replay", "Deployed"]

NONSYNAPTIC = ("exact", "reconstruction")


@dataclass(frozen=True)
class Replay:
    """What :func:`replay` returns.

    ``recording``: the input every synaptic layer receives; under a plan a
    :class:`QuantizedRecording` whose scales and zero points are pinned from the
    float run on the same frames, with ``plan=None`` the float :class:`Recording`
    (bit for bit ``record()``'s). ``stats``: ``count_events(recording, plan)``
    (None without a plan). ``outputs`` / ``reference``: ``{output name: (frame, ...)
    float32}`` under the plan and in the float run (the same arrays with
    ``plan=None``). ``seconds``: wall time of the float run, the plan run and the
    kernels inside the plan run.
    """

    recording: Recording
    stats: xr.Dataset | None
    outputs: Mapping[str, np.ndarray]
    reference: Mapping[str, np.ndarray]
    plan: SchemeOrPlan | None = None
    seconds: Mapping[str, float] = field(default_factory=dict)

    def save(self, path: str | Path, fidelity: Mapping[str, float] | None = None) -> Path:
        """Write a ``.nc`` file: the recording in the root group (``open_recording`` and
        ``else-dse stats`` read it), the outputs and the reference in groups ``outputs``
        and ``reference``; ``fidelity`` (e.g. :func:`else_dse.tasks.fidelity`) as JSON
        in the root attrs ``fidelity`` and as variables of group ``fidelity``."""
        path = Path(path)
        if path.suffix != ".nc":
            raise ValueError(f"{path}: a replay is written as NetCDF; use a .nc path")
        attrs = {"replay_seconds": json.dumps(dict(self.seconds))}
        if fidelity is not None:
            attrs["fidelity"] = json.dumps({k: float(v) for k, v in fidelity.items()})
        rec = type(self.recording)(self.recording.layers, self.recording.data.assign_attrs(attrs))
        rec.save(path)
        for group, arrays in (("outputs", self.outputs), ("reference", self.reference)):
            _arrays_dataset(arrays).to_netcdf(path, mode="a", group=group, engine="h5netcdf")
        if fidelity is not None:
            taken: set[str] = set()
            xr.Dataset({_var_name(k, taken): ((), float(v), {"metric": k}) for k, v in fidelity.items()}
                       ).to_netcdf(path, mode="a", group="fidelity", engine="h5netcdf")
        return path


def _arrays_dataset(arrays: Mapping[str, np.ndarray]) -> xr.Dataset:
    """``{name: (frame, ...)}`` as a Dataset (variable names made safe, the name in attrs)."""
    taken: set[str] = set()
    out = {}
    for name, a in arrays.items():
        v = _var_name(name, taken)
        dims = ("frame", *(f"{v}_{k}" for k in range(1, np.ndim(a))))
        out[v] = xr.Variable(dims, np.asarray(a), attrs={"output": name})
    return xr.Dataset(out)


def open_replay(path: str | Path) -> tuple[Recording, dict[str, np.ndarray], dict[str, np.ndarray],
                                           dict[str, float]]:
    """Read what :meth:`Replay.save` wrote: ``(recording, outputs, reference, fidelity)``."""
    from ..recording import open_recording

    path = Path(path)
    rec = open_recording(path)
    groups = []
    for group in ("outputs", "reference"):
        with xr.open_dataset(path, group=group, engine="h5netcdf") as ds:
            groups.append({str(ds[v].attrs["output"]): ds[v].values for v in ds.data_vars})
    fid = json.loads(rec.data.attrs.get("fidelity", "{}"))
    return rec, groups[0], groups[1], fid


class Deployed:
    """The plan at every synaptic layer's input, for one replay (owns its state).

    Called as the segmented runner's ``consume(i, layer, x_chw)``: quantizes the
    layer's exact input with the pinned scale and zero point of its tensor, keeps
    the codes (the sender's X, once per tensor and frame), runs the layer's
    scheme through :func:`else_dse.events.reconstruct` (temporal state per layer,
    carried across frames in order) and returns the dequantized reconstruction.
    Call :meth:`next_frame` after each frame. ``kernel_seconds`` sums the time in
    the kernels as ``clock`` measures it (the wall clock unless set).
    """

    clock: Callable[[], float] = staticmethod(time.perf_counter)
    finite = True  # what it returns is dequantized codes: the runner skips its NaN/inf scan

    def __init__(self, layers: Sequence[Layer], schemes: Sequence[Scheme], pinned: QuantizedRecording):
        self.layers, self.schemes = tuple(layers), tuple(schemes)
        self.bits = pinned.bits
        self.scale = {t: pinned.scale(t) for t in pinned.tensors}
        self.zero_point = {t: pinned.zero_point(t) for t in pinned.tensors}
        self.states: list[TemporalState | None] = [None] * len(self.layers)
        self.codes: dict[str, list[np.ndarray]] = {t: [] for t in pinned.tensors}
        self.events = np.zeros((len(self.layers), 0), np.int64)
        self.sops = np.zeros((len(self.layers), 0), np.int64)
        self.kernel_seconds = 0.0
        self._frame: dict[str, np.ndarray] = {}
        self._counts: dict[int, tuple[int, int]] = {}

    def __call__(self, i: int, layer: Layer, x_chw: np.ndarray) -> np.ndarray:
        tensor = layer.input
        if tensor not in self._frame:  # quantized in the runtime's memory order, then (C, H, W)
            codes = codes_of(x_chw, self.scale[tensor], self.zero_point[tensor], self.bits)
            self._frame[tensor] = np.ascontiguousarray(codes)
        t0 = self.clock()
        r = reconstruct(self._frame[tensor][None], layer, self.schemes[i],
                        zero_point=self.zero_point[tensor], state=self.states[i])
        self.kernel_seconds += self.clock() - t0
        self.states[i] = r.state
        self._counts[i] = (int(r.events[0]), int(r.sops[0]))
        # dequantized straight into an array with x_chw's memory order (the runtime's layout)
        return dequantize_codes(r.values[0], self.scale[tensor], out=np.empty_like(x_chw))

    def next_frame(self) -> None:
        """Close the frame: keep its codes and the kernels' counts of every layer."""
        missing = [la.name for i, la in enumerate(self.layers) if i not in self._counts]
        if missing:
            raise RuntimeError(f"replay: layers {missing} were not fed in this frame")
        for tensor, c in self._frame.items():
            self.codes[tensor].append(c)
        counts = np.array([self._counts[i] for i in range(len(self.layers))], np.int64)
        self.events = np.concatenate([self.events, counts[:, :1]], axis=1)
        self.sops = np.concatenate([self.sops, counts[:, 1:]], axis=1)
        self._frame, self._counts = {}, {}

    def recording(self, pinned: QuantizedRecording) -> QuantizedRecording:
        """The codes every tensor was sent with, in ``pinned``'s layout and attrs."""
        return pinned.with_codes({t: np.stack(c) for t, c in self.codes.items()})


def _stack(runs: list[Mapping[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {name: np.stack([np.asarray(r[name]) for r in runs]) for name in runs[0]}


def _float_run(seg: Any, frames: list[np.ndarray], bar: bool, name: str
               ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """The float network over all frames: its layer inputs (per tensor) and outputs."""
    inputs: dict[str, list[np.ndarray]] = {}
    outputs = []
    for x in progress(frames, len(frames), f"replay {name} (float)", bar):
        run = seg.run(x)
        firsts: dict[str, str] = {}  # tensor -> its first reader, in first-use order as record()
        for layer in seg.layers:
            firsts.setdefault(layer.input, layer.name)
        for tensor, name in firsts.items():
            inputs.setdefault(tensor, []).append(run.inputs[name])
        outputs.append(run.outputs)
    return {t: np.stack(a) for t, a in inputs.items()}, _stack(outputs)


def _plan_run(seg: Any, frames: list[np.ndarray], deployed: Deployed, bar: bool, name: str,
              nonsynaptic: str) -> dict[str, np.ndarray]:
    outputs = []
    for x in progress(frames, len(frames), f"replay {name} (plan)", bar):
        outputs.append(seg.run(x, deployed, nonsynaptic=nonsynaptic).outputs)
        deployed.next_frame()
    return _stack(outputs)


def _check_args(nonsynaptic: str, bits: int) -> None:
    if nonsynaptic not in NONSYNAPTIC:
        raise ValueError(f"replay: nonsynaptic must be one of {NONSYNAPTIC}, got {nonsynaptic!r}")
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) or not 2 <= bits <= 16:
        raise ValueError(f"replay: bits must be an int in [2, 16], got {bits!r}")


def replay(model_path: "str | Path | SegmentedModel", frames: Iterable[Any],
           plan: SchemeOrPlan | None = None, *,
           bits: int = 8, calibration: Literal["max", "percentile"] = "max",
           value_range: tuple[float, float] = (0.0, 1.0), progress_bar: bool = True,
           nonsynaptic: Literal["exact", "reconstruction"] = "exact",
           reference: Replay | None = None) -> Replay:
    """Run ``model_path`` (``.tflite`` / ``.onnx``) on ``frames`` with ``plan`` applied
    at every synaptic layer's input, in closed loop (see :class:`Replay`).

    The float network runs once over all frames (the reference; its recording,
    quantized with ``bits`` and ``calibration``, pins every tensor's scale and
    zero point); then, frame by frame in order, each layer is fed the dequantized
    reconstruction of its actual input under its scheme. ``nonsynaptic`` says what
    ADD, CONCATENATION, model outputs and other non-synaptic readers of a layer's
    input get: the exact tensor (default) or the reconstruction fed to the
    tensor's first layer. Frames are prepared as :func:`record` prepares them
    (``value_range``); a tqdm bar runs over frames unless ``progress_bar=False``.
    ``model_path`` may also be a model opened with
    :func:`~else_dse.record.segments.open_segments` (reused across replays).
    ``reference``: the ``plan=None`` replay of the same model and frames (same
    ``value_range``): its float run is reused instead of run again (the result is
    the same); a reference of other frames, another model or preprocessing is an error.
    """
    from .segments import SegmentedModel, open_segments

    _check_args(nonsynaptic, bits)
    seg = model_path if isinstance(model_path, SegmentedModel) else open_segments(model_path)
    path = Path(seg.path)
    schemes = as_plan(plan).resolve(seg.layers) if plan is not None else None
    h, w, c = seg.input_hwc
    prepared = list(model_frames(frames, h, w, c, value_range))
    if not prepared:
        raise RecorderError(f"{path}: no frames given")
    t0 = time.perf_counter()
    attrs = _attrs(path, Preprocess(h, w, value_range), plan, nonsynaptic)
    if reference is None:
        arrays, reference_out = _float_run(seg, prepared, progress_bar, path.name)
        rec = Recording.from_arrays(seg.layers, arrays, attrs=attrs)
    else:
        rec, reference_out = _reused(reference, attrs, len(prepared)), dict(reference.reference)
    seconds = {"float_run": time.perf_counter() - t0}
    if schemes is None:
        return Replay(rec, None, reference_out, reference_out, None, seconds)
    pinned = rec.quantize(bits=bits, calibration=calibration)
    deployed = Deployed(seg.layers, schemes, pinned)
    t0 = time.perf_counter()
    outputs = _plan_run(seg, prepared, deployed, progress_bar, path.name, nonsynaptic)
    seconds.update(plan_run=time.perf_counter() - t0, kernels=deployed.kernel_seconds)
    sent = deployed.recording(pinned)
    return Replay(sent, count_events(sent, plan), outputs, reference_out, plan, seconds)


def _reused(reference: Replay, attrs: Mapping[str, Any], n_frames: int) -> Recording:
    """The float recording of a ``plan=None`` replay, checked against this replay's model,
    preprocessing and frame count, with this replay's attrs."""
    rec = reference.recording
    if reference.plan is not None or isinstance(rec, QuantizedRecording):
        raise ValueError("replay: reference must be a plan=None replay (the float run)")
    for key in ("model_sha256", "preprocessing"):
        if rec.attrs.get(key) != attrs[key]:
            raise ValueError(f"replay: reference was run with another {key} ({rec.attrs.get(key)!r}, "
                             f"this replay {attrs[key]!r})")
    if rec.n_frames != n_frames:
        raise ValueError(f"replay: reference has {rec.n_frames} frames, this replay {n_frames}")
    return type(rec)(rec.layers, rec.data.assign_attrs(dict(attrs)))


def _attrs(path: Path, prep: Preprocess, plan: SchemeOrPlan | None, nonsynaptic: str) -> dict[str, Any]:
    import hashlib

    return {"recorder": "else_dse.record.replay", "model_file": path.name,
            "model_sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
            "preprocessing": prep.describe(), "replay_plan": repr(plan) if plan is not None else "",
            "replay_nonsynaptic": nonsynaptic,
            "replay_loop": "closed: every layer computes on its input's reconstruction"
            if plan is not None else "float run"}
