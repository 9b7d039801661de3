"""Closed-loop evaluation of configurations: replay the network under a plan, count, cost, task fidelity.

A :class:`ClosedLoop` owns one model and one set of frames: it runs the float
network once (the reference every replay reuses), then for each plan replays
the network in closed loop (:func:`else_dse.record.replay`), keeps the event
statistics of what the deployed network sends (``Replay.stats``) and the task
fidelity against the float run (:func:`else_dse.tasks.fidelity`) in a bounded
LRU keyed by (plan, bits, calibration), and evaluates a :class:`Config` like a
search trial (:func:`else_dse.search.evaluate.evaluation`, cost by
:func:`else_dse.cost.estimate`).

>>> loop = ClosedLoop("data/models/face_detection_short_range.tflite", frames,
...                   value_range=(-1, 1))                        # doctest: +SKIP
>>> loop.run(ed.LineDelta(threshold=2)).fidelity["detection.recall"]  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import xarray as xr

from ..recording import Recording
from ..schemes import SchemeOrPlan
from .evaluate import Evaluation, _Bounded, evaluation
from .objectives import Constraint
from .space import Config, SearchError

__all__ = ["ClosedLoop", "ClosedLoopRun", "recording_info", "value_range_of"]

#: what the stored breakdown says about where a closed-loop trial's statistics come from
LOOP_NOTE = "closed: replayed on the study's frames; events, SOPs and error of what the deployed network sends"


@dataclass(frozen=True)
class ClosedLoopRun:
    """One plan in closed loop: statistics of what the network sends, fidelity vs float, replay time (s)."""

    stats: xr.Dataset
    fidelity: Mapping[str, float]
    seconds: float


def value_range_of(preprocessing: str) -> tuple[float, float] | None:
    """The input value range of a recording's ``preprocessing`` attr
    (:meth:`else_dse.record.media.Preprocess.describe`), None when it does not say."""
    m = re.search(r"mapped linearly to \[([-+0-9.eE]+),([-+0-9.eE]+)\]", preprocessing or "")
    return (float(m.group(1)), float(m.group(2))) if m else None


def _input_codes(rec: Recording) -> str:
    """A fingerprint of the frames: hash of the 8-bit codes (max calibration) of the first layer's input."""
    first = rec.layers[0].input
    q = rec.select_layers([rec.layers[0].name]).quantize(bits=8, calibration="max")
    return hashlib.blake2b(np.ascontiguousarray(q.tensor(first)).data, digest_size=16).hexdigest()


def recording_info(rec: Recording, content: str) -> dict[str, Any]:
    """What a study stores about its recording (user attr ``recording``): content hash, frames,
    layers, source, preprocessing, model hash and the frames' fingerprint (``input_codes``)."""
    info = {"hash": content, "n_frames": rec.n_frames, "layers": [layer.name for layer in rec.layers],
            "source": str(rec.attrs.get("source", rec.attrs.get("model", ""))),
            **{k: str(v) for k, v in rec.attrs.items()
               if k in ("network", "model", "media", "task", "preprocessing", "model_sha256", "model_file")}}
    info["input_codes"] = _input_codes(rec)
    return info


class ClosedLoop:
    """The closed-loop evaluator of one model on one set of frames (see the module docstring).

    ``frames``: uint8 images or float model inputs, prepared once with ``value_range``
    as :func:`else_dse.record.replay` prepares them. ``cache_size``: plans kept.
    """

    def __init__(self, model: str | Path, frames: Iterable[Any], *, value_range: tuple[float, float],
                 calibration: str = "max", nonsynaptic: str = "exact", cache_size: int = 64,
                 progress_bar: bool = False) -> None:
        from ..record._common import model_frames
        from ..record.replay import replay
        from ..record.segments import open_segments

        self.model = Path(model)
        if not self.model.is_file():
            raise SearchError(f"model: {self.model}: no such model file")
        self.value_range = (float(value_range[0]), float(value_range[1]))
        self.calibration, self.nonsynaptic = calibration, nonsynaptic
        self.segments = open_segments(self.model)
        h, w, c = self.segments.input_hwc
        self.frames = list(model_frames(frames, h, w, c, self.value_range))
        if not self.frames:
            raise SearchError("frames: no frames given")
        t0 = time.perf_counter()
        self.reference = replay(self.segments, self.frames, None, value_range=self.value_range,
                                progress_bar=progress_bar, nonsynaptic=nonsynaptic)  # type: ignore[arg-type]
        self.float_seconds = time.perf_counter() - t0
        self._cache = _Bounded(cache_size)
        self._lock = threading.RLock()

    @property
    def n_frames(self) -> int:
        return len(self.frames)

    def check(self, info: Mapping[str, Any], where: str = "study") -> None:
        """Raise (one line) unless these frames, this model and this value range are those of the
        recording ``info`` describes (:func:`recording_info`, or a recording's attrs)."""
        rec = self.reference.recording
        if int(info.get("n_frames", self.n_frames)) != self.n_frames:
            raise SearchError(f"frames: {self.n_frames} given, the {where}'s recording has {info['n_frames']}")
        names = [layer.name for layer in rec.layers]
        if info.get("layers") and list(info["layers"]) != names:
            raise SearchError(f"model: {self.model.name} has layers {names[:3]}..., the {where}'s recording "
                              f"{list(info['layers'])[:3]}... ({len(info['layers'])} layers)")
        if info.get("model_sha256") and info["model_sha256"] != rec.attrs["model_sha256"]:
            raise SearchError(f"model: {self.model.name} is not the model the {where}'s recording was made "
                              f"with ({info.get('model_file', '?')}, sha256 {str(info['model_sha256'])[:12]}...)")
        vr = value_range_of(str(info.get("preprocessing", "")))
        if vr is not None and vr != self.value_range:
            raise SearchError(f"value_range: {self.value_range} given, the {where}'s recording was prepared "
                              f"with {vr}")
        if info.get("input_codes") and info["input_codes"] != _input_codes(rec):
            raise SearchError(f"frames: not the {where}'s frames (the 8-bit codes of the model input "
                              f"{rec.layers[0].input!r} differ); source of the recording: {info.get('source', '?')}")

    def run(self, plan: SchemeOrPlan, bits: int = 8) -> ClosedLoopRun:
        """Replay ``plan`` at ``bits`` (cached by plan, bits and calibration)."""
        from ..record.replay import replay
        from ..tasks import fidelity

        key = (plan, int(bits), self.calibration)
        with self._lock:
            hit = self._cache.lookup(key)
            if hit is not None:
                return hit
            t0 = time.perf_counter()
            rep = replay(self.segments, self.frames, plan, bits=int(bits), calibration=self.calibration,  # type: ignore[arg-type]
                         value_range=self.value_range, progress_bar=False, nonsynaptic=self.nonsynaptic,  # type: ignore[arg-type]
                         reference=self.reference)
            assert rep.stats is not None
            out = ClosedLoopRun(rep.stats, fidelity(self.model, rep.outputs, rep.reference),
                                time.perf_counter() - t0)
            self._cache.store(key, out)
            return out

    def evaluate(self, objectives: Sequence[str], constraints: Sequence[Constraint], config: Config) -> Evaluation:
        """A configuration in closed loop, evaluated and broken down like a search trial."""
        from ..cost import estimate

        run = self.run(config.plan, config.bits)
        cost = estimate(run.stats, config.hardware) if config.hardware is not None else None
        ev = evaluation(objectives, constraints, config, run.stats, cost, fidelity=run.fidelity)
        ev.user_attrs["loop"] = LOOP_NOTE
        ev.user_attrs["replay_seconds"] = run.seconds
        return ev

    def __getstate__(self) -> dict[str, Any]:
        """Pickled (spawned workers) without the runtime and the cache; the float run is kept."""
        return {k: v for k, v in self.__dict__.items() if k not in ("segments", "_cache", "_lock")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        from ..record.segments import open_segments

        self.__dict__.update(state)
        self.segments = open_segments(self.model)
        self._cache = _Bounded(64)
        self._lock = threading.RLock()
