"""The per-layer table a trial stores (user attribute ``layers``): one value per layer in each column.

Text columns (``layer``, ``choice``, ``scheme``, ``axis``, ``direction``, ``loop``) are
JSON lists. Numeric and boolean columns are strings ``"<dtype>:<base64>"``: the bytes
of the numpy array, with its dtype as numpy spells it (byte order included, e.g.
``<f8``). That is exact (NaN and infinities included) and, on the pose benchmark's
96 layers, 4-6x cheaper to encode, decode and copy than JSON lists of floats,
which each trial's storage does several times. The table holds ``"encoding":
ENCODING``; :func:`decode` (or :func:`trial_layers` on a trial) gives the columns
back as numpy arrays, and also reads tables stored before as plain lists.
"""

from __future__ import annotations

import base64
from typing import Any, Mapping, Sequence

import numpy as np

ENCODING = "numpy-base64"


def encode(columns: Mapping[str, np.ndarray | Sequence[str]]) -> dict[str, Any]:
    """A JSON-able table of ``columns`` (1-d numpy arrays of one value per layer, or lists of text)."""
    out: dict[str, Any] = {"encoding": ENCODING}
    for name, col in columns.items():
        if isinstance(col, np.ndarray) and col.dtype.kind in "biuf":
            a = np.ascontiguousarray(col)
            out[name] = f"{a.dtype.str}:{base64.b64encode(a.data).decode('ascii')}"
        elif isinstance(col, np.ndarray) and col.dtype.kind == "U":
            out[name] = col.tolist()           # numpy text: already str values
        else:
            out[name] = [str(x) for x in col]
    return out


def is_encoded(value: Any) -> bool:
    """Whether ``value`` is a table :func:`encode` wrote."""
    return isinstance(value, Mapping) and value.get("encoding") == ENCODING


def decode(value: Mapping[str, Any]) -> dict[str, np.ndarray | list[Any]]:
    """The columns of a stored table: numeric ones as numpy arrays, text ones as lists.
    A table stored as plain lists (earlier versions) is returned column by column as it is."""
    if not is_encoded(value):
        return {str(k): v for k, v in value.items()}
    out: dict[str, np.ndarray | list[Any]] = {}
    for name, col in value.items():
        if name == "encoding":
            continue
        if isinstance(col, str):
            dtype, _, data = col.partition(":")
            try:
                dt = np.dtype(dtype)
                if dt.kind not in "biuf":
                    raise ValueError(f"dtype {dtype!r} is not numeric or boolean")
                out[name] = np.frombuffer(base64.b64decode(data, validate=True), dtype=dt)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"layer table column {name!r}: not '<dtype>:<base64>' ({exc})") from None
        else:
            out[name] = list(col)
    return out


def trial_layers(trial: Any) -> dict[str, np.ndarray | list[Any]]:
    """The per-layer table of a stored trial (an Optuna ``FrozenTrial``, or its user attributes)."""
    attrs = trial if isinstance(trial, Mapping) else trial.user_attrs
    if "layers" not in attrs:
        raise KeyError("the trial stores no per-layer table (user attribute 'layers')")
    return decode(attrs["layers"])
