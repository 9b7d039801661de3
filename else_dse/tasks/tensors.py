"""Relative L2 error of output tensors: the task metric every model has.

``rel_l2(out, ref) = ||out - ref||_2 / ||ref||_2`` over all frames and all
elements of one tensor (one number per tensor, not a mean of per-frame
ratios), computed in float64 on values scaled by their largest magnitude so
that neither tiny nor huge values under- or overflow when squared.
Conventions: ``0 / 0 = 0`` (both tensors exactly zero: no error) and
``x / 0 = inf`` for ``x > 0`` (any change of an all-zero reference is
infinitely large relative to it).
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

__all__ = ["rel_l2", "rel_l2_all", "check_outputs"]


def rel_l2(out: np.ndarray, ref: np.ndarray) -> float:
    """``||out - ref|| / ||ref||`` over all elements (``0/0 = 0``, ``x/0 = inf``)."""
    out = np.asarray(out, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    if out.shape != ref.shape:
        raise ValueError(f"rel_l2: output shape {out.shape} differs from reference shape {ref.shape}")
    diff = out - ref
    scale = max(float(np.abs(diff).max(initial=0.0)), float(np.abs(ref).max(initial=0.0)))
    if scale == 0.0:  # both zero: 0/0
        return 0.0
    den = float(np.linalg.norm(ref / scale))  # scaled, so tiny values do not underflow when squared
    if den == 0.0:
        return float("inf")
    return float(np.linalg.norm(diff / scale)) / den


def check_outputs(outputs: Mapping[str, np.ndarray], reference: Mapping[str, np.ndarray]) -> None:
    """Fail in one line unless both map the same names to finite arrays of equal shape ``(frame, ...)``."""
    if set(outputs) != set(reference):
        raise ValueError(f"fidelity: outputs name {sorted(outputs)} but the reference names {sorted(reference)}")
    if not outputs:
        raise ValueError("fidelity: no output tensors given")
    for name in outputs:
        out, ref = np.asarray(outputs[name]), np.asarray(reference[name])
        if out.shape != ref.shape:
            raise ValueError(f"fidelity: output {name!r} has shape {out.shape}, its reference {ref.shape}")
        if out.ndim < 1 or out.shape[0] < 1:
            raise ValueError(f"fidelity: output {name!r} must be (frame, ...) with at least one frame, "
                             f"got shape {out.shape}")
        for what, a in (("output", out), ("reference", ref)):
            if not np.issubdtype(a.dtype, np.number):
                raise ValueError(f"fidelity: {what} {name!r} must be numeric, got dtype {a.dtype}")
            if not np.isfinite(a).all():
                raise ValueError(f"fidelity: {what} {name!r} holds NaN or inf")


def rel_l2_all(outputs: Mapping[str, np.ndarray], reference: Mapping[str, np.ndarray]) -> dict[str, float]:
    """``{"rel_l2[<name>]": rel_l2(outputs[name], reference[name])}`` for every output tensor."""
    check_outputs(outputs, reference)
    return {f"rel_l2[{name}]": rel_l2(outputs[name], reference[name]) for name in sorted(outputs)}
