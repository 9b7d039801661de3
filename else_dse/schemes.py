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

Every scheme has a name (:attr:`Scheme.name`: ``conventional``, ``dense``,
``line_y``, ``line_y_reverse``, ``line_x``, ``line_x_reverse``, ``temporal``)
and :meth:`Scheme.parse` reads ``NAME[:OPTIONS]`` with the aliases below: this
module is the one table of scheme names that the command line, study configs,
the search, labels and reports use.

>>> ed.Scheme.parse("line_x_reverse:2")
LineDelta(axis='x', direction='reverse', threshold=2, loop='closed', tau=0)
>>> ed.Scheme.parse("else:x:threshold=1").name, ed.TemporalDelta().name
('line_x', 'temporal')
"""

from __future__ import annotations

import dataclasses
import functools
import re
from dataclasses import dataclass, field
from typing import Any, ClassVar, Iterator, Literal, Mapping, Sequence, Union

import numpy as np

from .workload import Layer

__all__ = ["Scheme", "Dense", "Conventional", "LineDelta", "TemporalDelta", "Plan",
           "AXES", "DIRECTIONS", "LOOPS", "KINDS", "NAMES", "LINE_ORDERINGS", "SCHEME_HELP"]

AXES = ("y", "x")
DIRECTIONS = ("forward", "reverse")
LOOPS = ("closed", "open")
KINDS = ("dense", "conventional", "line_delta", "temporal_delta")
#: the scheme names (:attr:`Scheme.name`); a search space chooses among them per layer
NAMES = ("conventional", "dense", "line_y", "line_y_reverse", "line_x", "line_x_reverse", "temporal")
#: the four line orderings of ELSE (axis y/x, forward/reverse)
LINE_ORDERINGS = ("line_y", "line_y_reverse", "line_x", "line_x_reverse")
#: name or alias -> (kind, preset fields); names are read case- and ``-``/``_``-insensitively
_TABLE: dict[str, tuple[str, dict[str, str]]] = {
    "dense": ("dense", {}),
    "conventional": ("conventional", {}), "conv": ("conventional", {}), "zero_skip": ("conventional", {}),
    "line_delta": ("line_delta", {}), "line": ("line_delta", {}), "else": ("line_delta", {}),
    "linedelta": ("line_delta", {}),
    "temporal_delta": ("temporal_delta", {}), "temporal": ("temporal_delta", {}),
    "delta": ("temporal_delta", {}), "sigma_delta": ("temporal_delta", {}),
    **{f"line_{a}{sfx}": ("line_delta", {"axis": a, "direction": d})
       for a in AXES for d, sfxs in (("forward", ("", "_forward")), ("reverse", ("_reverse",))) for sfx in sfxs},
}
_BARE = {"y": "axis", "x": "axis", "forward": "direction", "reverse": "direction",
         "closed": "loop", "open": "loop"}

SCHEME_HELP = """\
A scheme is NAME[:OPTIONS] with NAME one of dense, conventional (alias conv),
line_delta (alias else), temporal_delta (alias temporal), or line_y, line_x,
line_y_reverse, line_x_reverse (line delta with that axis and direction), and
OPTIONS comma- or colon-separated key=value pairs or bare values (y|x = axis,
forward|reverse = direction, closed|open = loop, an integer = threshold):
  line_delta:y:1    line_x:2    line_delta:axis=x,threshold=2,loop=open    temporal:threshold=1,tau=1"""


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
    """Base of the schemes; ``kind`` names the scheme class in datasets, :attr:`name` the scheme."""

    kind: ClassVar[str] = ""
    #: whether the scheme has a delta ``threshold``
    thresholded: ClassVar[bool] = False

    def check_layer(self, layer: Layer) -> None:
        """Raise ``ValueError`` naming the layer if the scheme cannot run on it."""

    @property
    def name(self) -> str:
        """The scheme's name (one of :data:`NAMES`; thresholds and tau are not part of it)."""
        return self.kind

    def adjusted(self, **changes: Any) -> "Scheme":
        """A copy with the given fields (``threshold``, ``tau``, ``loop``...) replaced; fields
        this scheme does not have are ignored (a conventional scheme takes no threshold)."""
        own = {f.name for f in dataclasses.fields(self)}  # type: ignore[arg-type]
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if k in own})  # type: ignore[type-var]

    def to_dict(self) -> dict[str, Any]:
        """``kind``, ``axis``, ``direction``, ``threshold``, ``tau``, ``loop`` (``""`` / 0 where the
        scheme has no such field): the structured form stored with search trials."""
        return dict(_fields_of(self))

    @staticmethod
    def from_dict(d: Mapping[str, Any]) -> "Scheme":
        """The scheme of a :meth:`to_dict` mapping (other keys, and empty values of fields the
        kind does not have, are ignored)."""
        kind = d.get("kind")
        if kind not in _CLASSES:
            raise ValueError(f"scheme kind must be one of {KINDS}, got {kind!r}")
        cls = _CLASSES[kind]
        kw = {f.name: d[f.name] for f in dataclasses.fields(cls) if f.name in d}  # type: ignore[arg-type]
        return cls(**{k: int(v) if k in ("threshold", "tau") else v for k, v in kw.items()})

    @staticmethod
    def parse(text: str, **fields: Any) -> "Scheme":
        """A scheme from ``NAME[:OPTIONS]`` (:data:`SCHEME_HELP`); ``fields`` that are not None
        (``threshold=2``...) override the options. ``ValueError`` naming what is wrong.

        >>> Scheme.parse("temporal:1,tau=2")
        TemporalDelta(threshold=1, loop='closed', tau=2)
        """
        if not isinstance(text, str):
            raise ValueError(f"a scheme is a string NAME[:OPTIONS], got {text!r}")
        return _parse(text, tuple((k, v) for k, v in fields.items() if v is not None))


@functools.lru_cache(maxsize=4096)
def _fields_of(scheme: Scheme) -> dict[str, Any]:
    """:meth:`Scheme.to_dict` (cached; callers get a copy)."""
    out: dict[str, Any] = {"kind": scheme.kind, "axis": "", "direction": "", "threshold": 0, "tau": 0,
                           "loop": ""}
    out.update({f.name: getattr(scheme, f.name) for f in dataclasses.fields(scheme)})  # type: ignore[arg-type]
    return out


@functools.lru_cache(maxsize=4096)
def _parse(text: str, fields: tuple[tuple[str, Any], ...]) -> Scheme:
    """:meth:`Scheme.parse` (cached: schemes are immutable)."""
    head, _, rest = text.strip().partition(":")
    found = _TABLE.get(head.strip().lower().replace("-", "_"))
    if found is None:
        raise ValueError(f"unknown scheme {head!r} in {text!r}; names are {', '.join(NAMES)} "
                         "(aliases conv, line_delta, else, temporal_delta)")
    kind, preset = found
    cls = _CLASSES[kind]
    allowed = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    options = [_option(text, tok) for tok in filter(None, (t.strip() for t in re.split(r"[,:]", rest)))]
    kw: dict[str, Any] = dict(preset)
    for key, value, given in options + [(k, v, True) for k, v in fields]:
        if key in preset and str(value) != preset[key]:
            raise ValueError(f"scheme {text!r}: {head} means {key}={preset[key]}"
                             + (f"; {key}={value} contradicts it" if given else f", not {key}={value}"))
        if key not in allowed:
            raise ValueError(f"scheme {text!r}: {kind} has no option {key!r}; options are "
                             f"{allowed or 'none'}")
        if key in ("threshold", "tau") and isinstance(value, str):
            if not value.lstrip("-").isdigit():
                raise ValueError(f"scheme {text!r}: {key} must be an integer >= 0 (code steps), "
                                 f"got {value!r}")
            value = int(value)
        kw[key] = value
    try:
        return cls(**kw)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"scheme {text!r}: {exc}") from None


@dataclass(frozen=True)
class Dense(Scheme):
    """Every input element is an event; SOPs equal the dense MACs.

    ``tau`` (activation threshold) zeroes ``|X| <= tau`` in what is sent; every
    element is still sent, so only the error changes (that of ``Conventional(tau)``).
    """

    tau: int = 0
    kind: ClassVar[str] = "dense"

    def __post_init__(self) -> None:
        object.__setattr__(self, "tau", _check_int("Dense", "tau", self.tau))

    def __str__(self) -> str:
        return f"Dense(tau={self.tau})" if self.tau else "Dense()"


@dataclass(frozen=True)
class Conventional(Scheme):
    """Zero skipping: events are the non-zero codes after the activation threshold ``tau``."""

    tau: int = 0
    kind: ClassVar[str] = "conventional"

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
    kind: ClassVar[str] = "line_delta"
    thresholded: ClassVar[bool] = True

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

    @property
    def name(self) -> str:
        return f"line_{self.axis}" + ("_reverse" if self.direction == "reverse" else "")

    def __str__(self) -> str:
        return (f"LineDelta({self.axis}, {self.direction}, theta={self.threshold}, "
                f"{self.loop}, tau={self.tau})")


@dataclass(frozen=True)
class TemporalDelta(Scheme):
    """Sigma-delta over frames: each frame is sent as its delta to the previous one."""

    threshold: int = 0
    loop: Literal["closed", "open"] = "closed"
    tau: int = 0
    kind: ClassVar[str] = "temporal_delta"
    thresholded: ClassVar[bool] = True

    def __post_init__(self) -> None:
        _check_choice("TemporalDelta", "loop", self.loop, LOOPS)
        object.__setattr__(self, "threshold", _check_int("TemporalDelta", "threshold", self.threshold))
        object.__setattr__(self, "tau", _check_int("TemporalDelta", "tau", self.tau))

    @property
    def name(self) -> str:
        return "temporal"

    def __str__(self) -> str:
        return f"TemporalDelta(theta={self.threshold}, {self.loop}, tau={self.tau})"


def _option(text: str, tok: str) -> tuple[str, str, bool]:
    """``(field, value, False)`` of one option token of a scheme string."""
    if "=" in tok:
        key, _, value = (x.strip() for x in tok.partition("="))
        return key, value, False
    if tok.lstrip("-").isdigit():
        return "threshold", tok, False
    if tok.lower() in _BARE:
        return _BARE[tok.lower()], tok.lower(), False
    raise ValueError(f"scheme {text!r}: cannot read option {tok!r}")


_CLASSES: dict[str, type] = {"dense": Dense, "conventional": Conventional, "line_delta": LineDelta,
                              "temporal_delta": TemporalDelta}


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
    kind: ClassVar[str] = "plan"

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
        """The scheme of a layer: its own, else ``default``."""
        return self.schemes.get(layer_name, self.default)

    def resolve(self, layers: Sequence[Layer]) -> tuple[Scheme, ...]:
        """The scheme of every layer, in order; validates names and layer compatibility."""
        layers = tuple(layers)
        memo = self.__dict__.get("_resolved")    # a plan is immutable: the last network's answer is kept
        if memo is not None and memo[0] == layers:
            return memo[1]
        names = [layer.name for layer in layers]
        known = set(names)
        unknown = [n for n in self.schemes if n not in known]
        if unknown:
            raise ValueError(f"Plan: unknown layer names {unknown}; valid layer names are {names}")
        out = tuple(self.scheme_for(layer.name) for layer in layers)
        for layer, scheme in zip(layers, out):
            scheme.check_layer(layer)
        object.__setattr__(self, "_resolved", (layers, out))
        return out

    def __getstate__(self) -> dict[str, Any]:
        """Pickled without the memos of :meth:`resolve` and ``repr``."""
        return {k: v for k, v in self.__dict__.items() if k not in ("_resolved", "_repr")}

    def __repr__(self) -> str:
        text = self.__dict__.get("_repr")     # a plan is immutable: its repr is built once
        if text is None:
            text = f"Plan({self.schemes!r}, default={self.default!r})"
            object.__setattr__(self, "_repr", text)
        return text

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
