"""Hardware templates: one frozen dataclass describing an event-driven many-core chip.

A :class:`Hardware` holds every parameter the analytical cost model
(:mod:`else_dse.cost`) reads: core count and mesh, per-core neuron and SRAM
capacity, bit widths, per-operation energies and times, static power, and the
execution mode. Every field is a plain number (or string) so a search space can
name it (``hardware.sram_per_core``) and :meth:`Hardware.replace` builds a
variant.

Validation is separate from construction (as in ZigZag): :func:`validate`
checks a description (a mapping of field -> value) and returns the normalized
values or raises :class:`HardwareError` listing every problem; construction
then only assigns. ``Hardware.__post_init__`` runs the same check so that no
invalid object exists.

Units: energies in pJ, times in ns, power in mW, memory in bytes, widths in
bits, clock in Hz (``None``, omitted in a template, for asynchronous logic; the model uses
the ``t_*`` times directly). Impossible values are rejected naming the field: a clock of 0 Hz,
an operation that takes no time (``t_sop``, ``t_neuron_update``, ``t_hop`` must be > 0),
bit widths over 64, a mesh smaller than ``n_cores``.

Time convention: ``t_sop`` is the time of one synaptic operation on ONE lane; a
core runs ``lanes`` SOPs in parallel, so ``S`` SOPs keep it busy
``S * t_sop / lanes``. A chip that does one SOP per cycle in each of 8 lanes at
250 MHz has ``t_sop = 4.0`` (one cycle) and ``lanes = 8``, not ``t_sop = 0.5``.
``t_neuron_update`` and ``t_hop`` are per core (not divided by ``lanes``).

Shipped templates live in ``else_dse/templates/<name>.toml``: a ``[hardware]``
table with the values and a ``[sources]`` table mapping each field to
``"<tag>: <citation or reasoning>"`` with tag ``P`` (primary source), ``S``
(secondary), ``D`` (derived by arithmetic from published numbers; the text shows
the arithmetic and its result, ``... = <value>``) or ``A`` (modelling assumption).

>>> hw = load_template("neuronflow")
>>> hw.n_cores, hw.execution
(196, 'event')
>>> hw.replace(e_sop=10.0).e_sop
10.0
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Mapping

import tomli_w

__all__ = [
    "EXECUTIONS",
    "SCHEDULES",
    "HOP_TIMINGS",
    "OVERFLOW_LAYOUTS",
    "FIELDS",
    "Hardware",
    "HardwareError",
    "SOURCE_TAGS",
    "load_template",
    "template_names",
    "validate",
]

EXECUTIONS = ("event", "timestep")
#: how the layers of one frame share time (else_dse.cost); "auto" = "step" when time-stepped, else "streamed"
SCHEDULES = ("sequential", "streamed", "step")
#: how a core's received events take NoC time (else_dse.cost; docs/hardware.md "Hop timing")
HOP_TIMINGS = ("pipelined", "serialized")
#: where the cores of a mapping larger than the chip are placed (docs/hardware.md "Overflow")
OVERFLOW_LAYOUTS = ("grid", "strip")
SOURCE_TAGS = ("P", "S", "D", "A")
#: the fields whose value is one of a fixed set of words
_CHOICES = {"hop_timing": HOP_TIMINGS, "overflow_layout": OVERFLOW_LAYOUTS}


class HardwareError(ValueError):
    """An invalid hardware description; the message names the field(s) and what is allowed."""


# field -> (kind, unit, meaning).  kind: "count" (int >= 1), "int0" (int >= 0),
# "energy"/"time"/"power" (float >= 0), "clock" (float > 0, or 0 = asynchronous), "text",
# "execution", "schedule", "choice" (one of _CHOICES[field]).
FIELDS: dict[str, tuple[str, str, str]] = {
    "name": ("text", "-", "template name"),
    "execution": ("execution", "-", "'event': a neuron is updated only when it receives input; "
                  "'timestep': every neuron is updated every step (one stats frame = one step)"),
    "schedule": ("schedule", "-", "how the layers of a frame share time, the same for every scheme: "
                 "'sequential' (layer by layer), 'streamed' (consecutive layers on different cores "
                 "overlap line by line), 'step' (all layers in parallel, then a barrier), 'auto' "
                 "('step' when time-stepped, else 'streamed')"),
    "hop_timing": ("choice", "-", "NoC time of a core's received events, the same for every scheme: "
                   "'pipelined' (routers pass one event per t_hop; a core receives its events one per "
                   "t_hop, the route adds its distance x t_hop once) or 'serialized' (every event's whole "
                   "route, distance x t_hop, is charged to the receiving core)"),
    "overflow_layout": ("choice", "-", "placement of a mapping that needs more cores than n_cores: "
                        "'grid' (copies of the chip tiled in a near-square grid of chips, one mesh) or "
                        "'strip' (one mesh_x-wide mesh, as many rows as needed)"),
    "n_cores": ("count", "-", "neuro cores on the chip"),
    "mesh_x": ("count", "-", "mesh columns (mesh_x * mesh_y >= n_cores)"),
    "mesh_y": ("count", "-", "mesh rows"),
    "clock_hz": ("clock", "Hz", "core clock; omitted (None) for asynchronous logic. Times t_* are used "
                 "directly, the clock only converts the busiest core's time to cycles"),
    "neurons_per_core": ("count", "-", "neurons (output positions with their own state) one core holds"),
    "sram_per_core": ("count", "byte", "data memory per core for weights, state and event buffers"),
    "weight_bits": ("count", "bit", "bits per synaptic weight"),
    "state_bits": ("count", "bit", "bits per state word (potential, reference)"),
    "neuron_words": ("count", "-", "state words one neuron keeps (1 = its potential)"),
    "event_bits": ("count", "bit", "bits of one event message (address + payload)"),
    "buffer_events": ("int0", "-", "input event buffer depth per core, in events"),
    "lanes": ("count", "-", "synaptic operations a core performs in parallel (S SOPs take S*t_sop/lanes)"),
    "e_sop": ("energy", "pJ", "energy per synaptic operation (weight fetch + accumulate)"),
    "e_neuron_update": ("energy", "pJ", "energy per neuron update (activation, delta, fire decision)"),
    "e_event_out": ("energy", "pJ", "energy to generate and inject one event"),
    "e_hop": ("energy", "pJ", "energy per event per mesh hop"),
    "e_sram_bit": ("energy", "pJ", "energy per bit of state traffic not included in e_sop/e_neuron_update"),
    "e_barrier": ("energy", "pJ", "energy per used core per barrier (one barrier per step/frame)"),
    "p_static_core": ("power", "mW", "static (leakage) power per used core"),
    "p_static_chip": ("power", "mW", "static power of the chip outside the cores (uncore, I/O)"),
    "t_sop": ("time", "ns", "time of one synaptic operation on one lane (a core's S SOPs take "
                            "S*t_sop/lanes)"),
    "t_neuron_update": ("time", "ns", "time per neuron update"),
    "t_hop": ("time", "ns", "time per event per hop (hop_timing says how it adds up at a core)"),
    "t_barrier": ("time", "ns", "time of one barrier (one per step/frame)"),
}

_INT_KINDS = ("count", "int0")
_FLOAT_KINDS = ("energy", "time", "power", "clock")
#: fields that cannot be 0: an operation that takes no time does not exist (an energy may be 0:
#: a term left out, or zeroed to isolate the others)
_POSITIVE = ("t_sop", "t_neuron_update", "t_hop")
#: bit widths: at most 64 (a wider word is not a word any core has)
_BITS = ("weight_bits", "state_bits", "event_bits")


def _allowed(kind: str, name: str = "") -> str:
    if name in _POSITIVE:
        return f"a number > 0 ({FIELDS[name][1]}); an operation cannot take no time"
    if name in _BITS:
        return "an integer from 1 to 64 (bits)"
    return {
        "count": "an integer >= 1",
        "int0": "an integer >= 0",
        "energy": "a number >= 0 (pJ)",
        "time": "a number >= 0 (ns)",
        "power": "a number >= 0 (mW)",
        "clock": "a number > 0 (Hz), or omitted (None) for asynchronous logic",
        "text": "a non-empty string",
        "execution": f"one of {EXECUTIONS}",
        "schedule": f"one of {('auto', *SCHEDULES)}",
        "choice": f"one of {_CHOICES.get(name)}",
    }[kind]


def validate(description: Mapping[str, Any], *, partial: bool = False) -> dict[str, Any]:
    """Check a hardware description and return it normalized (ints, floats).

    Raises :class:`HardwareError` listing every problem: unknown fields (with
    the allowed names), missing fields (unless ``partial``), wrong types or
    values (naming the field and what is allowed), and a mesh too small for
    ``n_cores``.
    """
    problems: list[str] = []
    out: dict[str, Any] = {}
    unknown = sorted(set(description) - set(FIELDS))
    if unknown:
        problems.append(f"unknown field(s) {unknown}; allowed fields are {sorted(FIELDS)}")
    defaults = {f.name for f in dataclasses.fields(Hardware)
                if f.default is not dataclasses.MISSING and f.name in FIELDS}
    missing = sorted(set(FIELDS) - set(description) - defaults)
    if missing and not partial:
        problems.append(f"missing field(s) {missing}")
    for name, value in description.items():
        if name not in FIELDS:
            continue
        kind = FIELDS[name][0]
        ok = True
        if kind in _INT_KINDS:
            ok = isinstance(value, int) and not isinstance(value, bool) or (
                isinstance(value, float) and value.is_integer())
            if ok:
                value = int(value)
                ok = value >= (1 if kind == "count" else 0) and (name not in _BITS or value <= 64)
        elif kind == "clock" and value is None:
            pass                                    # asynchronous logic
        elif kind in _FLOAT_KINDS:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            if ok:
                value = float(value)
                ok = math.isfinite(value) and (value > 0 if kind == "clock" or name in _POSITIVE else value >= 0)
        elif kind == "text":
            ok = isinstance(value, str) and bool(value)
        elif kind == "execution":
            ok = value in EXECUTIONS
        elif kind == "schedule":
            ok = value in ("auto", *SCHEDULES)
        elif kind == "choice":
            ok = value in _CHOICES[name]
        if not ok:
            problems.append(f"{name} must be {_allowed(kind, name)}, got {value!r}")
        out[name] = value
    if not problems and {"n_cores", "mesh_x", "mesh_y"} <= set(out):
        if out["mesh_x"] * out["mesh_y"] < out["n_cores"]:
            problems.append(
                f"mesh_x * mesh_y = {out['mesh_x']} * {out['mesh_y']} = {out['mesh_x'] * out['mesh_y']} "
                f"cannot hold n_cores = {out['n_cores']}; allowed: mesh_x * mesh_y >= n_cores")
    if problems:
        name = description.get("name", "?")
        raise HardwareError(f"hardware {name!r}: " + "; ".join(problems))
    return out


def _validate_sources(sources: Mapping[str, Any], name: str) -> tuple[tuple[str, str], ...]:
    problems = []
    for key, text in sources.items():
        if key not in FIELDS:
            problems.append(f"[sources] names unknown field {key!r}")
        elif not isinstance(text, str) or text.split(":", 1)[0].strip() not in SOURCE_TAGS or ":" not in text:
            problems.append(f"[sources].{key} must be a string '<tag>: <source>' with tag in {SOURCE_TAGS}, "
                            f"got {text!r}")
    if problems:
        raise HardwareError(f"hardware {name!r}: " + "; ".join(problems))
    return tuple(sorted((str(k), str(v)) for k, v in sources.items()))


@dataclass(frozen=True)
class Hardware:
    """An event-driven many-core chip; see :data:`FIELDS` for units and meaning."""

    n_cores: int
    mesh_x: int
    mesh_y: int
    neurons_per_core: int
    sram_per_core: int
    weight_bits: int
    state_bits: int
    e_sop: float
    e_neuron_update: float
    e_event_out: float
    e_hop: float
    e_sram_bit: float
    p_static_core: float
    lanes: int
    t_sop: float
    t_neuron_update: float
    t_hop: float
    name: str = "custom"
    clock_hz: float | None = None
    execution: str = "event"
    schedule: str = "auto"
    hop_timing: str = "pipelined"
    overflow_layout: str = "grid"
    neuron_words: int = 1
    event_bits: int = 32
    buffer_events: int = 64
    e_barrier: float = 0.0
    t_barrier: float = 0.0
    p_static_chip: float = 0.0
    sources: tuple[tuple[str, str], ...] = field(default=(), compare=False, repr=False)

    def __post_init__(self) -> None:
        values = validate({f: getattr(self, f) for f in FIELDS})
        for key, value in values.items():
            object.__setattr__(self, key, value)
        object.__setattr__(self, "sources", _validate_sources(dict(self.sources), self.name))

    # ---- construction -------------------------------------------------------
    @classmethod
    def from_dict(cls, description: Mapping[str, Any],
                  sources: Mapping[str, str] | None = None) -> "Hardware":
        """Validate ``description`` (field -> value), then build."""
        values = validate(description)
        return cls(**values, sources=_validate_sources(sources or {}, values.get("name", "?")))

    @classmethod
    def from_toml(cls, path: str | Path) -> "Hardware":
        """Read a template: table ``[hardware]`` (values) and optional ``[sources]``."""
        path = Path(path)
        with path.open("rb") as fh:
            try:
                doc = tomllib.load(fh)
            except tomllib.TOMLDecodeError as exc:
                raise HardwareError(f"{path}: not valid TOML: {exc}") from None
        return cls._from_doc(doc, str(path))

    @classmethod
    def _from_doc(cls, doc: Mapping[str, Any], where: str) -> "Hardware":
        extra = sorted(set(doc) - {"hardware", "sources"})
        if "hardware" not in doc or extra:
            raise HardwareError(f"{where}: a template has tables [hardware] and optional [sources]; "
                                f"got tables {sorted(doc)}")
        return cls.from_dict(doc["hardware"], doc.get("sources", {}))

    def to_dict(self) -> dict[str, Any]:
        return {f: getattr(self, f) for f in FIELDS}

    def to_toml(self, path: str | Path | None = None) -> str:
        """The template as TOML text (``[hardware]`` + ``[sources]``); written to ``path`` if given."""
        doc: dict[str, Any] = {"hardware": {k: v for k, v in self.to_dict().items() if v is not None}}
        if self.sources:
            doc["sources"] = dict(self.sources)
        text = tomli_w.dumps(doc)
        if path is not None:
            Path(path).write_text(text)
        return text

    def replace(self, **changes: Any) -> "Hardware":
        """A validated copy with some fields changed (sources of changed fields are dropped)."""
        unknown = sorted(set(changes) - set(FIELDS))
        if unknown:
            raise HardwareError(f"hardware {self.name!r}: unknown field(s) {unknown}; "
                                f"allowed fields are {sorted(FIELDS)}")
        sources = tuple((k, v) for k, v in self.sources if k not in changes)
        return dataclasses.replace(self, **changes, sources=sources)     # validated in __post_init__

    def source(self, field_name: str) -> str:
        """``"<tag>: <source>"`` of a field, or ``""`` when none is recorded."""
        return dict(self.sources).get(field_name, "")


def template_names() -> tuple[str, ...]:
    """Names of the shipped templates (``else_dse/templates/*.toml``)."""
    root = resources.files("else_dse") / "templates"
    return tuple(sorted(p.name[:-5] for p in root.iterdir() if p.name.endswith(".toml")))


def load_template(name: str) -> Hardware:
    """A shipped template by name (``neuronflow``, ``loihi2``, ``seneca``) or a TOML path."""
    if name.endswith(".toml"):
        return Hardware.from_toml(name)
    names = template_names()
    if name not in names:
        raise HardwareError(f"no hardware template {name!r}; shipped templates are {list(names)} "
                            "(or pass a path to a .toml file)")
    text = (resources.files("else_dse") / "templates" / f"{name}.toml").read_text()
    return Hardware._from_doc(tomllib.loads(text), f"template {name!r}")
