"""``fidelity()``: what a replay's outputs mean for the task, against the float run."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import numpy as np

from .tensors import rel_l2_all

__all__ = ["fidelity"]


def fidelity(model_path: str | Path | None, outputs: Mapping[str, np.ndarray],
             reference: Mapping[str, np.ndarray]) -> dict[str, float]:
    """Task fidelity of ``outputs`` (a replay under a plan) against ``reference`` (the float run).

    ``outputs`` and ``reference`` map each output tensor name to a
    ``(frame, ...)`` array, as ``Replay.outputs`` / ``Replay.reference``.
    Returns ``{"rel_l2[<name>]": ||out - ref|| / ||ref||}`` for every output
    tensor (over all frames; ``0/0 = 0``, ``x/0 = inf``, see
    :mod:`else_dse.tasks.tensors`). ``model_path`` names the model the
    outputs come from (it may be ``None`` when only tensor metrics are wanted).
    Raises ``ValueError`` in one line for mismatched names, shapes or
    non-finite values.

    >>> import numpy as np
    >>> ref = {"y": np.array([[3.0, 4.0]])}
    >>> fidelity(None, {"y": np.array([[3.0, 3.0]])}, ref)
    {'rel_l2[y]': 0.2}
    """
    return rel_l2_all(outputs, reference)
