"""``gpupolicy simulate --timeline``: the openb trace replayed over time, with departures and a queue.

Pods arrive at ``creation_time`` (gaps divided by ``--load``, the trace laid ``--repeat`` times end to end),
wait when nothing fits, run ``deletion_time - scheduled_time`` once placed and leave
(:mod:`gpupolicy.solver.simulate.timeline`). Prints per strategy the time-averaged allocation, waiting
times and pods never placed (``-o table``), or ``{"strategies": {NAME: {...}}, ...}`` (``-o json``);
``--plot`` draws allocation and queue length over time and the CDF of waiting times.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from gpupolicy.plugin.cli.files import read_source

MAX_LOAD = 1e9  # arrival gaps divided by at most this (the openb trace spans 1.3e7 s)
MAX_REPEAT = 1000  # copies of the trace, end to end


def range_problem(args: argparse.Namespace) -> str:
    """``--load`` and ``--repeat`` out of range, or options the timeline does not take (usage errors)."""
    from gpupolicy.plugin.cli.ranges import first, integer_in, number_in

    problem = first(
        number_in("--load", args.load, 0, MAX_LOAD, above_low=True),
        integer_in("--repeat", args.repeat, 1, MAX_REPEAT),
    )
    if problem or not args.timeline:
        if not args.timeline and (args.load != 1.0 or args.repeat != 1):
            return problem or "--load and --repeat apply to --timeline only"
        return problem
    if args.inventory or args.claims or args.policy:
        return "--timeline replays an openb pod list with times (--nodes/--pods), not --inventory/--claims"
    if args.ceiling is not None:
        return "--ceiling does not apply to --timeline"
    if args.mig:
        wrong = [s for s in args.strategy if s not in ("first-fit", "online", "batch")]
        if wrong:
            return f"--mig supports first-fit, online and batch, not {', '.join(wrong)}"
    return ""


def run(args: argparse.Namespace, seeds: list[int]) -> int:
    from gpupolicy.policy.errors import DiagnosticError, Location
    from gpupolicy.solver.simulate.timeline import workload
    from gpupolicy.solver.simulate.timeline_run import run_timeline, summarize
    from gpupolicy.solver.simulate.times import parse_times
    from gpupolicy.solver.simulate.trace import check_replayable, parse_nodes, parse_pods

    nodes = parse_nodes(*read_source(args.nodes, "nodes_unreadable"))
    text = read_source(args.pods, "pods_unreadable")[0]
    pods = parse_pods(text, nodes.models, str(args.pods))
    times = parse_times(text, str(args.pods))
    check_replayable(nodes, pods, 0.0, str(args.nodes), str(args.pods))
    work = workload(pods, times, args.load, args.repeat)
    if work.count == 0:
        raise DiagnosticError.single(
            "pods_no_run_times",
            "no row has a scheduled_time: no pod ran in the trace, so there is nothing to replay",
            Location(str(args.pods), 1, 1),
        )
    trace = args.pods.stem.removeprefix("openb_pod_list_")
    progress = _progress if sys.stderr.isatty() else None
    docs = {
        s: summarize(
            run_timeline(nodes, work, s, seeds, args.check, typical_pods=pods, progress=progress, mig=args.mig)
        )
        for s in args.strategy
    }
    out = {"trace": trace, "load": args.load, "repeat": args.repeat, "seeds": seeds, "strategies": docs}
    if args.mig:
        out["variant"] = "mig-h100-80gb"  # allocation = MIG compute slices in use
    if args.output == "json":
        print(json.dumps(out, indent=1, sort_keys=True))
    else:
        print(table(out))
    if args.plot:
        plot(out, args.plot)
    return 0


def _progress(strategy: str, seed: int) -> None:
    print(f"{strategy} seed {seed}: done", file=sys.stderr, flush=True)


def _cell(mean: object, sd: object, digits: int = 1) -> str:
    if mean is None:
        return "-"
    text = f"{float(str(mean)):.{digits}f}"
    return text if not sd else f"{text}±{float(str(sd)):.{digits}f}"


def table(out: dict[str, object]) -> str:
    docs = out["strategies"]
    assert isinstance(docs, dict)
    head = (
        f"{'strategy':<12} {'alloc %':>11} {'wait mean s':>13} {'p50 s':>9} {'p95 s':>9} {'p99 s':>11}"
        f" {'never placed':>12} {'frag %':>9} {'queue max':>9} {'s/seed':>7}"
    )
    lines = [f"trace {out['trace']}, load {out['load']:g}, repeat {out['repeat']}, seeds {len(out['seeds'])}", head]  # type: ignore[arg-type]
    for name, d in docs.items():
        lines.append(
            f"{name:<12} {_cell(d['allocation_mean'], d['allocation_mean_sd'], 2):>11}"
            f" {_cell(d['wait_mean_s'], d['wait_mean_s_sd']):>13} {_cell(d['wait_p50_s'], None):>9}"
            f" {_cell(d['wait_p95_s'], None):>9} {_cell(d['wait_p99_s'], d['wait_p99_s_sd']):>11}"
            f" {_cell(d['never_placed'], None):>12} {_cell(d['fragmentation_mean'], None, 2):>9}"
            f" {_cell(d['queue_max'], None, 0):>9} {_cell(d['seconds'], None):>7}"
        )
    lines.append("per priority (qos): wait mean / p99 s, never placed")
    for name, d in docs.items():
        parts = [
            f"{level} ({'+'.join(p['qos']) or '-'}): {_cell(p['wait_mean_s'], None)} / {_cell(p['wait_p99_s'], None)},"
            f" {_cell(p['never_placed'], None)}"
            for level, p in d["per_priority"].items()
        ]
        lines.append(f"  {name}: " + "; ".join(parts))
    return "\n".join(lines)


def plot(out: dict[str, object], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    docs = out["strategies"]
    assert isinstance(docs, dict)
    fig, (ax1, ax2, ax3) = plt.subplots(3, 1, figsize=(7, 9), dpi=110)
    for name, d in docs.items():
        s = d["series"]
        t = [float(x) / 3600 for x in s["t_s"]]
        nan = float("nan")
        ax1.plot(t, [nan if v is None else v for v in s["allocation"]], label=f"{name} ({d['allocation_mean']}%)")
        ax2.plot(t, [nan if v is None else v for v in s["queue"]], label=name)
        cdf = [nan if v is None else v for v in s["wait_cdf_s"]]
        ax3.plot(cdf, [p / 100 for p in range(101)], label=name)
    ax1.set_ylabel("GPU allocation (%)")
    ax1.set_ylim(0, 101)
    ax2.set_ylabel("pods waiting")
    ax2.set_xlabel("time since the first arrival (h)")
    ax3.set_xlabel("waiting time (s), placed pods")
    ax3.set_ylabel("fraction of pods")
    ax3.set_xscale("symlog")
    ax1.set_title(f"openb {out['trace']}: timeline, load {out['load']:g}, repeat {out['repeat']}")
    for ax in (ax1, ax2, ax3):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
