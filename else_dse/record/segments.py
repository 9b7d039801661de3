"""A model cut at every synaptic layer's input, so each layer can be fed an array of the caller's choice.

>>> from else_dse.record.segments import open_segments            # doctest: +SKIP
>>> seg = open_segments("data/models/face_detection_short_range.tflite")
>>> run = seg.run(x, lambda i, layer, x_chw: x_chw)  # doctest: +SKIP

The layers are exactly those :func:`else_dse.record.record` finds (same names,
order and geometry, folded ``PAD`` included); the cut is planned by
:mod:`else_dse.record.cut` and run in the model's own runtime, chosen on the
suffix: LiteRT for ``.tflite`` (one subgraph and SignatureDef per segment in a
rewritten flatbuffer, :mod:`.tflite_segments`), onnxruntime for ``.onnx`` (one
session per segment, :mod:`.onnx_segments`). Each op runs in the runtime's own
kernels on the same inputs as in a whole-model run, so an unchanged run is bit
for bit the runtime's own result.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Hashable, Literal, Mapping

import numpy as np

from ..workload import Layer
from ._common import SegmentError, check_float_frame
from .cut import Consume, CutPlan, Segment

__all__ = ["open_segments", "SegmentedModel", "SegmentRun", "SegmentError", "Consumer"]

Consumer = Callable[[int, Layer, np.ndarray], np.ndarray]
MODES = ("exact", "reconstruction")


@dataclass(frozen=True)
class SegmentRun:
    """One frame through the cut model.

    ``inputs``: layer name -> float32 ``(C, H, W)``, that layer's exact input as computed in this
    run (before the consumer replaced it). ``outputs``: model output name -> array in the runtime's
    own layout and shape.
    """

    inputs: Mapping[str, np.ndarray]
    outputs: Mapping[str, np.ndarray]


class SegmentedModel:
    """A model cut at the input of every synaptic layer (see :func:`open_segments`).

    ``layers`` are exactly :func:`~else_dse.record.record`'s; ``input_hwc`` is the model input size
    (frames are prepared as ``record()`` prepares them); ``output_names`` the model outputs.
    """

    layers: tuple[Layer, ...]
    input_hwc: tuple[int, int, int]
    output_names: tuple[str, ...]
    path: Path

    def __init__(self, path: Path, layers: tuple[Layer, ...], input_hwc: tuple[int, int, int],
                 output_names: tuple[str, ...]) -> None:
        self.path, self.layers, self.input_hwc, self.output_names = path, layers, input_hwc, output_names
        self._plans: dict[str, CutPlan] = {}

    # ---- what a runtime provides ------------------------------------------------
    def _plan(self, reconstruction: bool) -> CutPlan:  # pragma: no cover - abstract
        raise NotImplementedError

    def _prepare(self, reconstruction: bool, plan: CutPlan) -> None:  # pragma: no cover - abstract
        """Build the runtime's segments for ``plan`` (called once per mode)."""
        raise NotImplementedError

    def _feed(self, x: np.ndarray) -> dict[Hashable, np.ndarray]:  # pragma: no cover - abstract
        """The model input tensors for one ``(H, W, C)`` float32 frame."""
        raise NotImplementedError

    def _run_segment(self, reconstruction: bool, index: int, seg: Segment,
                     values: Mapping[Hashable, np.ndarray]) -> dict[Hashable, np.ndarray]:  # pragma: no cover
        raise NotImplementedError

    def _to_chw(self, layer: Layer, a: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def _from_chw(self, layer: Layer, x: np.ndarray, like: np.ndarray) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    def run_full(self, x: np.ndarray) -> dict[str, np.ndarray]:  # pragma: no cover - abstract
        """The runtime's own whole-model run of frame ``x`` with the same options (the reference)."""
        raise NotImplementedError

    # ---- shared ---------------------------------------------------------------------
    def plan(self, nonsynaptic: Literal["exact", "reconstruction"] = "exact") -> CutPlan:
        """The cut plan (segments and consume steps) for ``nonsynaptic``; built once per mode."""
        if nonsynaptic not in MODES:
            raise SegmentError(f"nonsynaptic must be one of {MODES}, got {nonsynaptic!r}")
        if nonsynaptic not in self._plans:
            try:
                plan = self._plan(nonsynaptic == "reconstruction")
            except SegmentError as exc:
                raise SegmentError(f"{self.path}: {exc}") from None
            self._prepare(nonsynaptic == "reconstruction", plan)
            self._plans[nonsynaptic] = plan
        return self._plans[nonsynaptic]

    @property
    def segments(self) -> int:
        """Number of segments the runtime runs per frame (exact mode)."""
        return self.plan("exact").segments

    def run(self, x: np.ndarray, consume: Consumer | None = None, *,
            nonsynaptic: Literal["exact", "reconstruction"] = "exact") -> SegmentRun:
        """Run one frame, letting ``consume`` choose what every synaptic layer is fed.

        ``x`` is a float ``(H, W, C)`` frame of ``input_hwc``, prepared as ``record()``'s
        ``model_frames`` prepares it. Layers are visited in network order: once layer ``i``'s
        input has been computed from what the upstream layers were fed, ``consume(i, layer, x_chw)``
        gets that exact input as a read-only float32 ``(C, H, W)`` array (as ``record()`` stores
        it) and returns the float32 ``(C, H, W)`` array fed to THAT layer only (returning the
        given array itself feeds the exact input at no cost); a tensor read by
        several layers is offered to each of them (one call per layer), and each layer computes
        on its own array (a folded ``PAD`` pads each layer's own array).

        ``nonsynaptic`` says what the other readers of a layer's input tensor get (ADD,
        CONCATENATION, the PAD or RESHAPE of another branch, a model output, ...):
        ``"exact"`` (default), the tensor as computed; ``"reconstruction"``, the array returned
        for the tensor's first layer in network order. In that mode a layer may be visited
        before an earlier one when its input depends on such a reconstruction.

        A consumer with a true attribute ``finite`` (e.g. :class:`~else_dse.record.replay.Deployed`,
        whose arrays are dequantized codes) promises finite values: the scan for NaN and inf of
        what it returns is skipped (its dtype and shape are still checked).

        With ``consume=None`` every layer gets its exact input: the outputs are bit for bit
        those of :meth:`run_full` (the runtime's own whole-model run: no delegates, default
        thread count) and ``inputs`` those ``record()`` records on the same frame.
        """
        plan = self.plan(nonsynaptic)
        h, w, c = self.input_hwc
        values = self._feed(check_float_frame(x, (h, w, c), "frame"))
        inputs: dict[str, np.ndarray] = {}
        reconstruction = nonsynaptic == "reconstruction"
        finite = bool(getattr(consume, "finite", False))
        k = 0
        for step in plan.steps:
            if isinstance(step, Segment):
                values.update(self._run_segment(reconstruction, k, step, values))
                k += 1
                continue
            layer = self.layers[step.layer]
            exact = values[step.read]
            chw = self._to_chw(layer, exact)
            chw.flags.writeable = False
            inputs[layer.name] = chw
            got = chw if consume is None else consume(step.layer, layer, chw)
            if got is chw:  # the exact input itself: feed the runtime's own array, no layout change
                fed = exact
            else:
                fed = self._from_chw(layer, self._checked(step.layer, layer, got, finite), exact)
            values[step.fed] = fed
            if step.recon is not None:
                values[step.recon] = fed
        ordered = {la.name: inputs[la.name] for la in self.layers}
        return SegmentRun(ordered, {n: values[t] for n, t in zip(self.output_names, plan.outputs)})

    @staticmethod
    def _checked(i: int, layer: Layer, a: Any, finite: bool = False) -> np.ndarray:
        want = f"a float32 array of shape (C, H, W) = {layer.input_shape}"
        if not isinstance(a, np.ndarray):
            raise SegmentError(f"layer {layer.name!r} (layer {i}): consume returned {type(a).__name__}; "
                               f"it must return {want}")
        if a.dtype != np.float32 or a.shape != layer.input_shape:
            raise SegmentError(f"layer {layer.name!r} (layer {i}): consume returned dtype {a.dtype} shape "
                               f"{a.shape}; it must return {want}")
        if not finite and not np.isfinite(a).all():
            raise SegmentError(f"layer {layer.name!r} (layer {i}): consume returned non-finite values "
                               "(NaN or inf)")
        return a

    def __repr__(self) -> str:
        return (f"<SegmentedModel {self.path.name}: {len(self.layers)} layers, input (H, W, C) "
                f"{self.input_hwc}, outputs {list(self.output_names)}>")


SUFFIXES = (".tflite", ".onnx")


def open_segments(model_path: str | Path) -> SegmentedModel:
    """Open a ``.tflite`` or ``.onnx`` model cut at every synaptic layer's input (dispatch on the suffix).

    Fails with one line when the file is missing or of another kind, or when a cut cannot be made
    (a layer reading a constant, state kept in variable tensors, a non-float layer input).
    """
    path = Path(model_path)
    if path.suffix not in SUFFIXES:
        raise SegmentError(f"{path}: unsupported model suffix {path.suffix!r}; use one of {SUFFIXES}")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such model file")
    if path.suffix == ".tflite":
        from .tflite_segments import TFLiteSegments

        model: SegmentedModel = TFLiteSegments(path)
    else:
        from .onnx_segments import ONNXSegments

        model = ONNXSegments(path)
    model.plan("exact")  # a cut that cannot be made fails here, not at the first frame
    return model
