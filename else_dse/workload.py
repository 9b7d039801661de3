"""Layer geometry and the fan-out / cover math of ``semantics.md``.

This module is the one home of the geometry: output sizes, the extended row
range of line deltas, the lines a line-delta sender must emit, the cover of an
input line and the fan-out of an event. Kernels, the cost model and the tests'
reference implementation all import it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Iterable, Literal

import numpy as np

__all__ = [
    "GeometryError",
    "Layer",
    "OPS",
    "output_size",
    "extended_rows",
    "cover",
    "needed_lines",
    "layers_by_name",
]

OPS = ("conv", "depthwise", "fc")
Op = Literal["conv", "depthwise", "fc"]


class GeometryError(ValueError):
    """Inconsistent or invalid layer geometry; the message names layer and field."""


def output_size(n: int, k: int, s: int, p_lo: int, p_hi: int, d: int) -> int:
    """``floor((n + p_lo + p_hi - d*(k-1) - 1) / s) + 1`` (may be <= 0 if invalid)."""
    return (n + p_lo + p_hi - d * (k - 1) - 1) // s + 1


def extended_rows(n_out: int, k: int, s: int, p_lo: int, d: int) -> range:
    """Rows a line-delta consumer processes: ``[r_lo, n_out)`` with
    ``r_lo = min(0, ceil((p_lo - (k-1)*d) / s))``; rows below 0 are virtual."""
    r_lo = min(0, -((-(p_lo - (k - 1) * d)) // s))
    return range(r_lo, n_out)


def cover(k: int, s: int, p_lo: int, d: int, rows: range, lines: range) -> np.ndarray:
    """Number of (row, tap) pairs reading each line of ``lines``.

    ``cover[j] = #{(r, i): r in rows, 0 <= i < k, r*s - p_lo + i*d == lines[j]}``.
    Returned as int64, one entry per line (lines may extend into the padding).
    """
    out = np.zeros(len(lines), dtype=np.int64)
    if len(rows) == 0 or len(lines) == 0:
        return out
    r = np.arange(rows.start, rows.stop, dtype=np.int64)
    for i in range(k):
        h = r * s - p_lo + i * d - lines.start
        h = h[(h >= 0) & (h < len(lines))]
        np.add.at(out, h, 1)
    return out


def needed_lines(n_in: int, n_out: int, k: int, s: int, p_lo: int, d: int) -> range:
    """Span of lines a line-delta sender must consider: ``[0, h_max]`` where
    ``h_max`` is the last line read by output row ``n_out - 1`` (may lie in the
    bottom padding, ``h >= n_in``). Lines inside the span with zero extended
    cover are not needed and carry no events; see :func:`cover`."""
    h_max = (n_out - 1) * s - p_lo + (k - 1) * d
    return range(0, max(h_max + 1, 0))


def _pair(value: Any, layer: str, name: str, n: int = 2, minimum: int = 1) -> tuple[int, ...]:
    if isinstance(value, (int, np.integer)):
        value = (int(value),) * n
    try:
        out = tuple(int(v) for v in value)
    except TypeError:
        raise GeometryError(f"layer {layer!r}: {name} must be an int or {n} ints, got {value!r}") from None
    if len(out) != n or any(int(v) != v for v in value):
        raise GeometryError(f"layer {layer!r}: {name} must be {n} ints, got {value!r}")
    if any(v < minimum for v in out):
        raise GeometryError(f"layer {layer!r}: {name} must be >= {minimum}, got {out}")
    return out


@dataclass(frozen=True)
class Layer:
    """A synaptic layer reading one recorded tensor (layout channel, y, x).

    ``padding`` is ``(top, bottom, left, right)``; ``input_shape`` and
    ``output_shape`` are ``(channels, height, width)``. ``output_shape`` is
    computed when omitted and checked when given. For ``op="fc"`` the input is
    flattened: ``in_channels == C*H*W`` and ``output_shape == (out_channels, 1, 1)``.

    >>> Layer("c1", "x", "conv", 3, 8, kernel=3, stride=2, padding=(0, 1, 0, 1),
    ...       input_shape=(3, 8, 8)).output_shape
    (8, 4, 4)
    """

    name: str
    input: str
    op: Op
    in_channels: int
    out_channels: int
    kernel: tuple[int, int] = (1, 1)
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int, int, int] = (0, 0, 0, 0)
    dilation: tuple[int, int] = (1, 1)
    groups: int = 1
    input_shape: tuple[int, int, int] = (1, 1, 1)
    output_shape: tuple[int, int, int] | None = field(default=None)

    def __post_init__(self) -> None:
        name = self.name
        if not isinstance(name, str) or not name:
            raise GeometryError(f"layer name must be a non-empty string, got {name!r}")
        if not isinstance(self.input, str) or not self.input:
            raise GeometryError(f"layer {name!r}: input must be a non-empty tensor name, got {self.input!r}")
        if self.op not in OPS:
            raise GeometryError(f"layer {name!r}: op must be one of {OPS}, got {self.op!r}")
        set_ = lambda f, v: object.__setattr__(self, f, v)  # noqa: E731
        set_("kernel", _pair(self.kernel, name, "kernel"))
        set_("stride", _pair(self.stride, name, "stride"))
        set_("dilation", _pair(self.dilation, name, "dilation"))
        set_("padding", _pair(self.padding, name, "padding", n=4, minimum=0))
        set_("input_shape", _pair(self.input_shape, name, "input_shape", n=3))
        for f in ("in_channels", "out_channels", "groups"):
            v = getattr(self, f)
            if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 1:
                raise GeometryError(f"layer {name!r}: {f} must be a positive int, got {v!r}")
            set_(f, int(v))
        c, h, w = self.input_shape
        if self.op == "fc":
            if self.in_channels != c * h * w:
                raise GeometryError(
                    f"layer {name!r}: in_channels of an fc layer must equal C*H*W of input_shape "
                    f"{self.input_shape} = {c * h * w}, got {self.in_channels}")
            for f, v in (("kernel", (1, 1)), ("stride", (1, 1)), ("dilation", (1, 1)),
                         ("padding", (0, 0, 0, 0)), ("groups", 1)):
                if getattr(self, f) != v:
                    raise GeometryError(f"layer {name!r}: an fc layer must have {f}={v}, got {getattr(self, f)}")
            expected = (self.out_channels, 1, 1)
        else:
            if self.in_channels != c:
                raise GeometryError(
                    f"layer {name!r}: in_channels={self.in_channels} does not match input_shape channels {c}")
            g = self.groups
            if self.in_channels % g or self.out_channels % g:
                raise GeometryError(
                    f"layer {name!r}: groups={g} must divide in_channels={self.in_channels} "
                    f"and out_channels={self.out_channels}")
            if self.op == "depthwise" and g != self.in_channels:
                raise GeometryError(
                    f"layer {name!r}: a depthwise layer needs groups == in_channels={self.in_channels}, got {g}")
            (kh, kw), (sh, sw), (dh, dw) = self.kernel, self.stride, self.dilation
            top, bottom, left, right = self.padding
            ho = output_size(h, kh, sh, top, bottom, dh)
            wo = output_size(w, kw, sw, left, right, dw)
            if ho < 1 or wo < 1:
                raise GeometryError(
                    f"layer {name!r}: kernel {self.kernel} with dilation {self.dilation} and padding "
                    f"{self.padding} does not fit input_shape {self.input_shape} (output {ho}x{wo})")
            expected = (self.out_channels, ho, wo)
        if self.output_shape is None:
            set_("output_shape", expected)
        else:
            got = _pair(self.output_shape, name, "output_shape", n=3)
            if got != expected:
                raise GeometryError(
                    f"layer {name!r}: output_shape {got} disagrees with the geometry, which gives {expected}")
            set_("output_shape", got)

    # ---- derived geometry -------------------------------------------------
    @property
    def fan_out_channels(self) -> int:
        """Output channels one input element reaches: ``C_out / groups`` (``C_out`` for fc)."""
        return self.out_channels if self.op == "fc" else self.out_channels // self.groups

    def rows(self, axis: str = "y", extended: bool = False) -> range:
        """Output rows (axis y) or columns (axis x); ``extended`` gives the line-delta range."""
        k, s, p_lo, _, d, _, n_out = self._axis(axis)
        return extended_rows(n_out, k, s, p_lo, d) if extended else range(0, n_out)

    def lines(self, axis: str = "y", extended: bool = False) -> range:
        """Input lines whose cover is computed: ``[0, n_in)``, or for the extended
        (line-delta) range ``[0, max(n_in, h_max + 1))`` including bottom-padding lines."""
        k, s, p_lo, _, d, n_in, n_out = self._axis(axis)
        if not extended:
            return range(0, n_in)
        return range(0, max(n_in, needed_lines(n_in, n_out, k, s, p_lo, d).stop))

    def cover(self, axis: str = "y", extended: bool = False) -> np.ndarray:
        """Cover of every input line along ``axis`` (int64), see :func:`cover`."""
        if self.op == "fc":
            n = self.input_shape[1 if axis == "y" else 2]
            return np.ones(n, dtype=np.int64)
        k, s, p_lo, _, d, _, _ = self._axis(axis)
        return cover(k, s, p_lo, d, self.rows(axis, extended), self.lines(axis, extended))

    def fan_out(self) -> np.ndarray:
        """Conventional fan-out of an event at each ``(y, x)`` (int64, shape H x W)."""
        return np.outer(self.cover("y"), self.cover("x")) * self.fan_out_channels

    @property
    def dense_events(self) -> int:
        c, h, w = self.input_shape
        return c * h * w

    @property
    def dense_macs(self) -> int:
        """MACs of a dense pass: the fan-out summed over every input position."""
        if self.op == "fc":
            return self.in_channels * self.out_channels
        return self.input_shape[0] * int(self.fan_out().sum())

    def swapped(self) -> "Layer":
        """The same layer with axes y and x exchanged (for line deltas along x)."""
        c, h, w = self.input_shape
        co, ho, wo = self.output_shape  # type: ignore[misc]
        t, b, l, r = self.padding
        return dataclasses.replace(
            self, kernel=self.kernel[::-1], stride=self.stride[::-1], dilation=self.dilation[::-1],
            padding=(l, r, t, b), input_shape=(c, w, h), output_shape=(co, wo, ho))

    def flipped(self) -> "Layer":
        """The same layer on a tensor flipped along y (reverse scan): top/bottom padding swapped."""
        t, b, l, r = self.padding
        return dataclasses.replace(self, padding=(b, t, l, r))

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Layer":
        unknown = set(d) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise GeometryError(f"layer {d.get('name')!r}: unknown fields {sorted(unknown)}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})

    def _axis(self, axis: str) -> tuple[int, int, int, int, int, int, int]:
        if axis not in ("y", "x"):
            raise ValueError(f"layer {self.name!r}: axis must be 'y' or 'x', got {axis!r}")
        j = 0 if axis == "y" else 1
        t, b, l, r = self.padding
        p_lo, p_hi = (t, b) if j == 0 else (l, r)
        return (self.kernel[j], self.stride[j], p_lo, p_hi, self.dilation[j],
                self.input_shape[1 + j], self.output_shape[1 + j])  # type: ignore[index]


def layers_by_name(layers: Iterable[Layer]) -> dict[str, Layer]:
    out: dict[str, Layer] = {}
    for layer in layers:
        if layer.name in out:
            raise GeometryError(f"layer {layer.name!r}: name used twice")
        out[layer.name] = layer
    return out
