"""Suppression schemes: what a sender transmits, as ``semantics.md`` defines it.

Every scheme is a frozen, hashable dataclass validated on construction.
Thresholds (``threshold``, the delta threshold theta, and ``tau``, the
activation threshold) are integers >= 0 in code steps. A :class:`Plan` assigns
a scheme to each layer by name, with a default for the others.

>>> import else_dse as ed
>>> str(ed.LineDelta(axis="x", threshold=2))
'LineDelta(x, forward, theta=2, closed, tau=0)'
>>> plan = ed.Plan({"conv1": ed.LineDelta()}, default=ed.TemporalDelta(threshold=1))
>>> plan.scheme_for("conv2").kind
'temporal_delta'
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator, Literal, Mapping, Sequence, Union

import numpy as np

from .workload import Layer

__all__ = ["Scheme", "Dense", "Conventional", "LineDelta", "TemporalDelta", "Plan",
           "AXES", "DIRECTIONS", "LOOPS", "KINDS"]

AXES = ("y", "x")
DIRECTIONS = ("forward", "reverse")
LOOPS = ("closed", "open")
KINDS = ("dense", "conventional", "line_delta", "temporal_delta")


def _check_int(owner: str, name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{owner}: {name} must be an int >= 0 (code steps), got {value!r}")
    if value < 0:
        raise ValueError(f"{owner}: {name} must be an int >= 0 (code steps), got {value!r}")
    return int(value)


def _check_choice(owner: str, name: str, value: Any, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ValueError(f"{owner}: {name} must be one of {allowed}, got {value!r}")
    return str(value)


class Scheme:
    """Base of the schemes; ``kind`` names the scheme in datasets and reports."""

    kind: str = ""

    def check_layer(self, layer: Layer) -> None:
        """Raise ``ValueError`` naming the layer if the scheme cannot run on it."""


@dataclass(frozen=True)
class Dense(Scheme):
    """Every input element is an event; SOPs equal the dense MACs.

    ``tau`` (activation threshold) zeroes ``|X| <= tau`` in what is sent; every
    element is still sent, so only the error changes (that of ``Conventional(tau)``).
    """

    tau: int = 0
    kind = "dense"

    def __post_init__(self) -> None:
        object.__setattr__(self, "tau", _check_int("Dense", "tau", self.tau))

    def __str__(self) -> str:
        return f"Dense(tau={self.tau})" if self.tau else "Dense()"


@dataclass(frozen=True)
class Conventional(Scheme):
    """Zero skipping: events are the non-zero codes after the activation threshold ``tau``."""

    tau: int = 0
    kind = "conventional"

    def __post_init__(self) -> None:
        object.__setattr__(self, "tau", _check_int("Conventional", "tau", self.tau))

    def __str__(self) -> str:
        return f"Conventional(tau={self.tau})"


@dataclass(frozen=True)
class LineDelta(Scheme):
    """ELSE: each line is sent as its delta to the line ``stride`` before it along ``axis``.

    ``direction="reverse"`` scans bottom-to-top (right-to-left for axis x).
    ``loop="closed"`` references what was sent (error <= threshold);
    ``loop="open"`` references the previous input line.
    """

    axis: Literal["y", "x"] = "y"
    direction: Literal["forward", "reverse"] = "forward"
    threshold: int = 0
    loop: Literal["closed", "open"] = "closed"
    tau: int = 0
    kind = "line_delta"

    def __post_init__(self) -> None:
        _check_choice("LineDelta", "axis", self.axis, AXES)
        _check_choice("LineDelta", "direction", self.direction, DIRECTIONS)
        _check_choice("LineDelta", "loop", self.loop, LOOPS)
        object.__setattr__(self, "threshold", _check_int("LineDelta", "threshold", self.threshold))
        object.__setattr__(self, "tau", _check_int("LineDelta", "tau", self.tau))

    def check_layer(self, layer: Layer) -> None:
        if layer.op == "fc":
            raise ValueError(
                f"layer {layer.name!r}: line delta is not defined for a fully connected (fc) layer; "
                f"use Dense, Conventional or TemporalDelta there")

    def __str__(self) -> str:
        return (f"LineDelta({self.axis}, {self.direction}, theta={self.threshold}, "
                f"{self.loop}, tau={self.tau})")


@dataclass(frozen=True)
class TemporalDelta(Scheme):
    """Sigma-delta over frames: each frame is sent as its delta to the previous one."""

    threshold: int = 0
    loop: Literal["closed", "open"] = "closed"
    tau: int = 0
    kind = "temporal_delta"

    def __post_init__(self) -> None:
        _check_choice("TemporalDelta", "loop", self.loop, LOOPS)
        object.__setattr__(self, "threshold", _check_int("TemporalDelta", "threshold", self.threshold))
        object.__setattr__(self, "tau", _check_int("TemporalDelta", "tau", self.tau))

    def __str__(self) -> str:
        return f"TemporalDelta(theta={self.threshold}, {self.loop}, tau={self.tau})"


class _FrozenMap(Mapping[str, Scheme]):
    """A read-only, hashable ``{layer name: scheme}`` mapping (insertion order kept)."""

    __slots__ = ("_d",)

    def __init__(self, items: Mapping[str, Scheme]) -> None:
        self._d = dict(items)

    def __getitem__(self, key: str) -> Scheme:
        return self._d[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._d)

    def __len__(self) -> int:
        return len(self._d)

    def __hash__(self) -> int:
        return hash(frozenset(self._d.items()))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Mapping) and dict(self._d) == dict(other)

    def __repr__(self) -> str:
        return repr(self._d)


@dataclass(frozen=True)
class Plan:
    """A scheme per layer name; layers not named get ``default``.

    Layer names are checked against a network by :meth:`resolve` (and so by
    ``count_events``): unknown names and line delta on an fc layer are errors.
    """

    schemes: Mapping[str, Scheme] = field(default_factory=dict)
    default: Scheme = field(default_factory=lambda: Conventional())
    kind = "plan"

    def __post_init__(self) -> None:
        if not isinstance(self.schemes, Mapping):
            raise ValueError(f"Plan: schemes must be a mapping {{layer name: scheme}}, got "
                             f"{type(self.schemes).__name__}")
        for name, scheme in self.schemes.items():
            if not isinstance(name, str) or not name:
                raise ValueError(f"Plan: layer names must be non-empty strings, got {name!r}")
            if not isinstance(scheme, Scheme):
                raise ValueError(f"Plan: scheme for layer {name!r} must be one of Dense, Conventional, "
                                 f"LineDelta, TemporalDelta; got {scheme!r}")
        if not isinstance(self.default, Scheme):
            raise ValueError(f"Plan: default must be one of Dense, Conventional, LineDelta, "
                             f"TemporalDelta; got {self.default!r}")
        object.__setattr__(self, "schemes", _FrozenMap(self.schemes))

    def scheme_for(self, layer_name: str) -> Scheme:
        return self.schemes.get(layer_name, self.default)

    def resolve(self, layers: Sequence[Layer]) -> tuple[Scheme, ...]:
        """The scheme of every layer, in order; validates names and layer compatibility."""
        names = [layer.name for layer in layers]
        unknown = [n for n in self.schemes if n not in set(names)]
        if unknown:
            raise ValueError(f"Plan: unknown layer names {unknown}; valid layer names are {names}")
        out = tuple(self.scheme_for(layer.name) for layer in layers)
        for layer, scheme in zip(layers, out):
            scheme.check_layer(layer)
        return out

    def __repr__(self) -> str:
        return f"Plan({self.schemes!r}, default={self.default!r})"

    def __str__(self) -> str:
        inner = ", ".join(f"{k}: {v}" for k, v in self.schemes.items())
        return f"Plan({{{inner}}}, default={self.default})"


SchemeOrPlan = Union[Scheme, Plan]


def as_plan(scheme_or_plan: SchemeOrPlan) -> Plan:
    """A plan from a scheme (applied to every layer) or a plan (returned as is)."""
    if isinstance(scheme_or_plan, Plan):
        return scheme_or_plan
    if isinstance(scheme_or_plan, Scheme):
        return Plan({}, default=scheme_or_plan)
    raise ValueError(f"expected a scheme (Dense, Conventional, LineDelta, TemporalDelta) or a Plan, "
                     f"got {scheme_or_plan!r}")
