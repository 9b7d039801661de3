"""Units and axis labels of metrics, and the names of schemes and configurations in figures."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import pandas as pd

from ..schemes import NAMES, Scheme
from .results import Results

_THRESHOLDED = tuple(n for n in NAMES if Scheme.parse(n).thresholded)   # names with a delta threshold


# (substring of a metric name, axis label, scale factor applied to stored values)
_UNITS: tuple[tuple[str, str, float], ...] = (
    ("energy", "energy per frame (µJ)", 1e-6),
    ("latency", "latency per frame (ms)", 1e3),
    ("state", "state memory (KiB)", 1 / 1024),
    ("weight", "weight memory (KiB)", 1 / 1024),
    ("bytes", "memory (KiB)", 1 / 1024),
    ("memory", "memory (KiB)", 1 / 1024),
    ("rel_error", "relative error ||X-R||/||X||", 1.0),
    ("max_error", "max |X-R| (code steps)", 1.0),
    ("error", "relative error ||X-R||/||X|| (mean over layers)", 1.0),
    ("sops", "SOPs per frame (millions)", 1e-6),
    ("macs", "MACs per frame (millions)", 1e-6),
    ("events", "events per frame (thousands)", 1e-3),
    ("cores", "cores used", 1.0),
)


def _unit(name: str) -> tuple[str, float]:
    low = name.lower()
    for key, label, scale in _UNITS:
        if key in low:
            if key == "error" and "rel" in low:
                return "relative error ||X-R||/||X||", 1.0
            return label, scale
    return name, 1.0


def _label(name: str) -> str:
    label, _ = _unit(name)
    return label if label != name else name.replace("_", " ")


_SHORT = {"sops": "SOPs", "events": "events", "energy": "energy", "latency": "latency",
          "state_memory": "state memory", "frame_memory": "frame memory", "cores": "cores"}


def _at(metric: str, value: float) -> str:
    """``rel. error 0.12``, ``latency 1.2 ms``: an objective value in words, for titles."""
    low = metric.lower()
    if low == "error" or "rel_error" in low:
        return f"rel. error {value:.2g}"
    if "max_error" in low:
        return f"max error {value:g} code steps"
    label, scale = _unit(metric)
    unit = label[label.rfind("(") + 1:-1] if label.endswith(")") else ""
    name = _SHORT.get(low, metric.replace("_", " "))
    return f"{name} {value * scale:.3g}" + (f" {unit}" if unit and "million" not in unit
                                            and "thousand" not in unit else "")


def _best_text(res: Results, front: pd.DataFrame, xm: str, ym: str, base: float | None) -> str:
    """Title text: the best reduction of ``ym`` on the front vs the reference, and at what ``xm``
    (with the lossless reduction when ``xm`` is an error); says so when the baseline does not fit."""
    if "error" in ym.lower():
        return ""
    if not base:
        return ": conventional baseline does not fit" if res.baseline_unfit else ""
    front = front[front[ym] > 0]
    if front.empty:
        return ""
    best = front.loc[front[ym].idxmin()]
    low = ym.lower()
    verb = "fewer" if any(k in low for k in ("sops", "events", "cores")) else "lower"
    text = f": best {base / best[ym]:.2f}x {verb} {_SHORT.get(low, ym.replace('_', ' '))} at {_at(xm, best[xm])}"
    if "error" in xm.lower():
        lossless = front[front[xm] <= 0]
        text += (f"; lossless {base / lossless[ym].min():.2f}x" if len(lossless) else "; no lossless trial")
    if res.reference != "conventional baseline":
        text += f" (vs {res.reference})"
    return text


def _scheme_name(row: Mapping[str, Any]) -> str:
    """The search's name of a layer's scheme: ``line_y``, ``line_x_reverse``, ``temporal``, ..."""
    choice = row.get("choice")
    if isinstance(choice, str) and choice:
        return choice
    fields = {k: row[k] for k in ("axis", "direction", "loop") if isinstance(row.get(k), str) and row[k]}
    try:
        return Scheme.from_dict({"kind": row.get("scheme"), **fields}).name
    except (ValueError, TypeError):
        return str(row.get("scheme", "?"))


def scheme_label(layers: pd.DataFrame) -> str:
    """What a configuration does, from its per-layer rows: ``line_x θ=2``, ``conventional``,
    ``temporal θ=0–3``, or for mixed plans the scheme counts (``mixed: 20 line_y, 17 temporal; θ=0–2``)."""
    if layers.empty:
        return "?"
    names = pd.Series([_scheme_name(r) for r in layers.to_dict("records")], index=layers.index)
    thr = pd.to_numeric(layers["threshold"], errors="coerce").fillna(0).astype(int) if "threshold" in layers \
        else pd.Series(0, index=layers.index)
    thresholded = names.isin(_THRESHOLDED)
    ths = sorted(set(thr[thresholded]))
    theta = "" if not ths else f" θ={ths[0]}" if len(ths) == 1 else f" θ={ths[0]}–{ths[-1]}"
    counts = names.value_counts()
    if len(counts) == 1:
        text = f"{counts.index[0]}{theta}"
    else:
        text = "mixed: " + ", ".join(f"{n} {k}" for k, n in counts.items()) + (f";{theta}" if theta else "")
    if "tau" in layers:
        taus = sorted(set(pd.to_numeric(layers["tau"], errors="coerce").fillna(0).astype(int)))
        if taus != [0]:
            text += f" τ={taus[0]}" if len(taus) == 1 else f" τ={taus[0]}–{taus[-1]}"
    return text


def _trial_label(res: Results, number: int) -> str:
    """A study trial's scheme and threshold: the drawn ``scheme``/``threshold`` of a shared space
    (``line_x θ=2``), else :func:`scheme_label` of its per-layer rows."""
    row = res.trials[res.trials["trial"] == number]
    if "param_scheme" in row and len(row) and isinstance(row["param_scheme"].iloc[0], str):
        name = row["param_scheme"].iloc[0]
        th = row["param_threshold"].iloc[0] if "param_threshold" in row else None
        return name if name not in _THRESHOLDED or th is None or pd.isna(th) else f"{name} θ={int(th)}"
    if res.layers.empty or "trial" not in res.layers:
        return ""                                   # a study without per-layer tables
    return scheme_label(res.layers[res.layers["trial"] == number])


def _config_labels(res: Results, configs: Sequence[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for cfg in configs:
        if res.is_study:
            text = _trial_label(res, int(cfg.split()[1]))
            out[cfg] = f"{text} ({cfg})" if text else cfg
        else:
            text = scheme_label(res.layers[res.layers["config"] == cfg])
            out[cfg] = text if text not in out.values() else f"{text} ({cfg})"
    return out
