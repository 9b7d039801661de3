"""Trade-off reports: seaborn figures and one self-contained HTML page.

:func:`write` takes an Optuna study (or a storage URL and study name) or the
event / cost datasets of :func:`else_dse.count_events` and
:func:`else_dse.estimate` and writes, under ``out_dir``::

    report.html      every figure embedded as base64 PNG; opens offline
    *.png            the figures
    trials.csv/.nc   one row per trial (studies)
    layers.csv/.nc   per-layer results (of every trial, or of every dataset)
    <name>.nc        the datasets given (datasets sources)

Reports only read what the study stored (objective values, parameters and the
cost breakdown in the trials' user attributes); they never recompute.

>>> import else_dse as ed                                   # doctest: +SKIP
>>> ed.report.write(study, "reports/my-study")              # doctest: +SKIP
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import optuna

# besides what write() uses: the names the CLI (layer_table, _serializable) and tests read from here
from .figures import FIGURES, _png, fig_layers, fig_pareto, figures
from .files import _for_netcdf, _safe, _serializable
from .headline import read_first, reference_text
from ..progress import Progress
from .labels import scheme_label
from .page import _CSS, _summary_table, with_units
from .pareto import _pareto_pair, pareto_mask
from .reference import PAPER_CLAIMS
from .results import ReportError, Results, Source
from .sources import collect, layer_table
from .verified import constraint_text, verified_section, verified_table


__all__ = ["PAPER_CLAIMS", "Results", "ReportError", "collect", "figures", "layer_table", "pareto_mask", "read_first",
           "write"]


def write(source: Source, out_dir: str | Path, title: str | None = None, progress: bool = True,
          verified: "optuna.Study | None" = None) -> Path:
    """Write ``report.html``, the figures (PNG), and trials / per-layer results (CSV, NetCDF).

    ``source``: an ``optuna.Study``, a ``(storage_url, study_name)`` pair, an event or cost
    ``xarray.Dataset``, a dict ``{name: Dataset}``, or NetCDF paths of such datasets.
    ``verified``: the study ``<name>:verify`` of :func:`else_dse.search.verify` (found in the
    storage by itself for a ``(storage_url, study_name)`` pair): a section shows the open-loop
    proxy of those trials beside the closed-loop truth (and ``verified.csv``).
    ``progress``: a bar on a terminal, else a line at every 10% on stderr (else_dse.progress).
    Returns the path of ``report.html``.
    """
    bar = Progress(len(FIGURES) + 2, "report", "step", enabled=progress)
    try:
        return _write(source, out_dir, title, bar, verified)
    finally:
        bar.close()


def _verified_of(source: Source) -> "optuna.Study | None":
    """The ``<name>:verify`` study beside a ``(storage_url, study_name)`` source, if there is one."""
    if not (isinstance(source, tuple) and len(source) == 2 and all(isinstance(s, str) for s in source)):
        return None
    import optuna

    from ..search import open_storage, verify_study_name

    store = open_storage(source[0], create=False)
    name = verify_study_name(source[1])
    return optuna.load_study(study_name=name, storage=store) if name in optuna.get_all_study_names(store) else None


def _closed_loop(res: Results, verified: "optuna.Study | None", out: Path, files: list[str]) -> tuple[str, str]:
    """The closed-loop section's HTML (and ``verified.csv``) and its line for the report's first
    lines; both empty without a verify study."""
    if verified is None:
        (out / "verified.csv").unlink(missing_ok=True)     # an earlier report's table would now be stale
        return "", ""
    table = verified_table(res, verified)
    table.to_csv(out / "verified.csv", index=False)
    files.append("verified.csv")
    rechecked = bool(verified.user_attrs.get("constraints_rechecked", True))
    text = constraint_text(table, rechecked)
    first = f"Closed loop (else-dse verify replayed {len(table)} trials): {text}" if text else ""
    return verified_section(table, verified.study_name, rechecked), first


def _write(source: Source, out_dir: str | Path, title: str | None, bar: Progress,
           verified: "optuna.Study | None") -> Path:
    res = collect(source, title)
    verified = verified if verified is not None else _verified_of(source)
    bar.update()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files: list[str] = []
    if not res.trials.empty:
        res.trials.to_csv(out / "trials.csv", index=False)
        _for_netcdf(res.trials).to_netcdf(out / "trials.nc", engine="h5netcdf")
        files += ["trials.csv", "trials.nc"]
    if not res.layers.empty:
        res.layers.to_csv(out / "layers.csv", index=False)
        _for_netcdf(res.layers).to_netcdf(out / "layers.nc", engine="h5netcdf")
        files += ["layers.csv", "layers.nc"]
    if not res.configs.empty:
        res.configs.to_csv(out / "configs.csv", index=False)
        files.append("configs.csv")
    if not res.curves.empty:
        res.curves.to_csv(out / "curves.csv", index=False)
        files.append("curves.csv")
    closed_loop, closed_first = _closed_loop(res, verified, out, files)
    for name, ds in res.datasets.items():
        fn = f"data_{_safe(name)}.nc"
        _serializable(ds).to_netcdf(out / fn, engine="h5netcdf")
        files.append(fn)

    sections = []
    figs = figures(res, on_figure=lambda _: bar.update())
    for name, fig in figs.items():
        png = _png(fig)
        (out / f"{name}.png").write_bytes(png)
        b64 = base64.b64encode(png).decode("ascii")
        caption = FIGURES[name][1]
        sections.append(
            f'<figure id="fig-{name}"><h2>{html.escape(name)}</h2>'
            f'<img src="data:image/png;base64,{b64}" alt="{html.escape(name)} figure" data-file="{name}.png">'
            f'<figcaption>{html.escape(caption)} (<a href="{name}.png">{name}.png</a>)</figcaption></figure>')
    skipped = [n for n in FIGURES if n not in figs]
    for name in skipped:  # a figure of an earlier report in this directory would now be stale
        (out / f"{name}.png").unlink(missing_ok=True)
    summary = _summary_table(res)
    head = (f"{len(res.trials)} trials, objectives: "
            + ", ".join(f"{o} ({d})" for o, d in zip(res.objectives, res.directions))
            if res.is_study else f"{len(res.configs)} configurations: " + ", ".join(map(str, res.configs.get(
                "config", []))))
    base = reference_text(res) or "none stored"
    first = read_first(res) + ([closed_first] if closed_first else [])
    body = [
        f"<h1>{html.escape(res.title)}</h1>",
        ('<section id="read-first"><h2>read this first</h2><ul>'
         + "".join(f"<li>{html.escape(t)}</li>" for t in first) + "</ul></section>") if first else "",
        f"<p>{html.escape(head)}. Written {_dt.datetime.now(_dt.timezone.utc):%Y-%m-%d %H:%M} UTC "
        "by else-dse.</p>",
        f"<p class=note>Reference ({html.escape(res.reference)}): {html.escape(base)}.</p>",
        *(f"<p class=note>{html.escape(n)}</p>" for n in res.notes),
        "<h2>summary</h2>" + ("<p>Pareto-optimal trials that fit the hardware and meet every constraint "
                              "(the first of each distinct result; energy and latency per frame):</p>"
                              if res.is_study else ""),
        "<div class=wide>" + with_units(summary, res).to_html(index=False, float_format=lambda v: f"{v:.4g}",
                                                              border=0)
        + "</div>" if not summary.empty else "<p>no completed trials</p>",
        closed_loop,
        *sections,
        "<h2>files</h2><ul>" + "".join(f'<li><a href="{f}">{f}</a></li>' for f in files) + "</ul>",
    ]
    if skipped:
        body.append("<p class=note>Figures not applicable to these results: "
                    + ", ".join(skipped) + ".</p>")
    page = ("<!DOCTYPE html><html lang=en><head><meta charset=utf-8>"
            f"<title>{html.escape(res.title)}</title><style>{_CSS}</style></head><body>"
            + "\n".join(body) + "</body></html>")
    path = out / "report.html"
    path.write_text(page, encoding="utf-8")
    bar.update()
    return path
