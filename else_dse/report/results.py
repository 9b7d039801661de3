"""What a report shows, as tables (:class:`Results`), and the error for a source it cannot read."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Mapping, Sequence, Union

import pandas as pd
import xarray as xr

if TYPE_CHECKING:
    import optuna


Source = Union["optuna.Study", tuple, xr.Dataset, Mapping[str, xr.Dataset], Sequence[xr.Dataset], str, Path]


class ReportError(ValueError):
    """A source the report cannot read (unknown type, missing study, empty study)."""


@dataclass(frozen=True)
class Results:
    """Everything a report shows, as tables.

    ``trials``: one row per trial (``trial``, ``state``, ``feasible``, objective
    columns named as the objectives, ``param_<name>``, ``attr_<name>`` scalars).
    ``layers``: one row per (``config``, ``layer``) with per-layer variables;
    ``config`` is a trial label ``"trial 12"`` or a dataset name.
    ``configs``: one row per configuration with network totals.
    ``curves``: threshold curves, one row per (``config``, ``layer``, ``threshold``).
    """

    title: str
    trials: pd.DataFrame
    objectives: tuple[str, ...]
    directions: tuple[str, ...]
    layers: pd.DataFrame
    configs: pd.DataFrame
    curves: pd.DataFrame
    baseline: dict[str, float]
    datasets: dict[str, xr.Dataset] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    #: what ``baseline`` is (legend and title text)
    reference: str = "conventional baseline"
    #: why there is no feasible conventional reference ("" when there is one or none was stored)
    baseline_unfit: str = ""
    #: per-layer table of the conventional reference (empty when unknown)
    baseline_layers: pd.DataFrame = field(default_factory=pd.DataFrame)

    @property
    def is_study(self) -> bool:
        return not self.trials.empty
