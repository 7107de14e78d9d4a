"""``gpupolicy simulate``: replay arrivals against a cluster with one or more placement strategies.

Two input modes:

- ``--nodes NODES.csv --pods PODS.csv``: an openb trace under the FGD paper's protocol (seeds, 130%
  of GPU capacity with resampling, shuffled arrivals, no departures or retries, 1% buckets of
  arrived demand); prints the allocation at 130% per strategy, or ``-o json`` with the curves;
- ``--inventory FILE... --claims FILE... [--policy FILE]``: our own formats (cluster descriptions or
  ResourceSlices; ResourceClaims/Pods in arrival order), replayed in file order with the solver's
  own strategies (see :mod:`gpupolicy.solver.simulate.claims`).

``--plot FILE.png`` draws allocation versus arrivals in both modes; it needs matplotlib, the optional
extra ``gpupolicy[plot]`` (without it ``--plot`` is a usage error, ``plot_unavailable``, before any replay).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from gpupolicy.plugin.cli.files import read_source
from gpupolicy.plugin.cli.solve import add_input_arguments

if TYPE_CHECKING:
    from gpupolicy.solver.simulate.mig import MigResult

STRATEGY_NAMES = ("random", "first-fit", "best-fit", "gpu-packing", "fgd", "online", "batch")
CLAIM_STRATEGIES = ("first-fit", "best-fit", "online", "batch")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--nodes", type=Path, help="openb node list CSV (sn,cpu_milli,memory_mib,gpu,model)")
    parser.add_argument("--pods", type=Path, help="openb pod list CSV (name,cpu_milli,memory_mib,num_gpu,...)")
    add_input_arguments(parser, "ResourceClaims, templates, Pods and workloads, in arrival order")
    parser.add_argument("--policy", type=Path, help="with --inventory: a GpuPolicy file")
    parser.add_argument("--window", type=int, default=16, help="with --inventory: arrivals per batch window")
    parser.add_argument("--time-limit", type=float, default=10.0, help="with --inventory: seconds per solve")
    parser.add_argument(
        "--strategy", action="append", choices=STRATEGY_NAMES, required=True, help="placement strategy (repeatable)"
    )
    parser.add_argument("--seeds", default="42", help="seeds, e.g. 42-51 or 42,43 (default: 42)")
    parser.add_argument("--target", type=float, default=1.3, help="arrived GPU demand / capacity (default: 1.3)")
    parser.add_argument("-o", "--output", choices=("table", "json"), default="table")
    parser.add_argument(
        "--plot", type=Path, help="write allocation %% vs arrived %% to this PNG (needs the extra gpupolicy[plot])"
    )
    parser.add_argument("--check", action="store_true", help="re-check capacities after every placement")
    parser.add_argument(
        "--ceiling",
        nargs="?",
        type=float,
        const=95.0,
        metavar="PCT",
        help="openb mode: per seed, an upper bound on the allocation of any schedule that places every pod"
        " the strategy placed before PCT %% of the GPU capacity had arrived (default 95; an LP, see"
        " solver/simulate/bound.py)",
    )
    parser.add_argument(
        "--timeline",
        action="store_true",
        help="replay over time: arrivals at creation_time, a queue, departures (docs/simulate.md, Timeline replay)",
    )
    parser.add_argument(
        "--load", type=float, default=1.0, help="with --timeline: divide the gaps between arrivals by this (default 1)"
    )
    parser.add_argument(
        "--repeat", type=int, default=1, help="with --timeline: lay the trace this many times end to end (default 1)"
    )
    parser.add_argument(
        "--mig",
        action="store_true",
        help="MIG variant: every GPU an H100-80GB with dynamic MIG (strategies first-fit, online, batch)",
    )


def _progress(strategy: str, seed: int, done: int, total: int) -> None:
    if done % 250 == 0 or done == total:
        end = "\n" if done == total else ""
        print(f"\r{strategy} seed {seed}: {done}/{total} pods", end=end, file=sys.stderr, flush=True)


MAX_TARGET = 10.0  # arrived GPU demand / capacity: the replay resamples the trace up to this share
MAX_WINDOW = 1_000_000  # arrivals per batch window


def _range_problem(args: argparse.Namespace) -> str:
    from gpupolicy.plugin.cli.ranges import first, integer_in, number_in, seconds_in
    from gpupolicy.policy.policyfile.model import MAX_TIME_LIMIT_SECONDS

    return first(
        number_in("--target", args.target, 0, MAX_TARGET),
        seconds_in("--time-limit", args.time_limit, MAX_TIME_LIMIT_SECONDS),
        integer_in("--window", args.window, 1, MAX_WINDOW),
    )


def _usage_problem(args: argparse.Namespace) -> str:
    from gpupolicy.plugin.cli.simulate_timeline import range_problem as timeline_problem

    if problem := _range_problem(args) or timeline_problem(args):
        return problem
    csv_mode = args.nodes is not None or args.pods is not None
    dra_mode = bool(args.inventory or args.claims or args.policy)
    if csv_mode and dra_mode:
        return "give either --nodes/--pods (openb CSV) or --inventory/--claims (YAML), not both"
    if csv_mode and (args.nodes is None or args.pods is None):
        return "the openb mode needs both --nodes and --pods"
    if not csv_mode and (not args.inventory or not args.claims):
        return "give --nodes NODES.csv --pods PODS.csv, or --inventory FILE... --claims FILE..."
    if args.ceiling is not None and not 0 <= args.ceiling <= 1000:
        return "--ceiling takes an arrived percent between 0 and 1000"
    if args.mig and args.ceiling is not None:
        return "--ceiling does not apply to --mig"
    if dra_mode:
        wrong = [s for s in args.strategy if s not in CLAIM_STRATEGIES]
        if wrong:
            return f"with --inventory the strategies are {', '.join(CLAIM_STRATEGIES)}, not {', '.join(wrong)}"
        if args.mig or args.ceiling is not None:
            return "--mig and --ceiling apply to the openb mode only"
    if args.plot is not None and not _can_plot():
        return (
            "plot_unavailable: --plot needs matplotlib, which is not installed;"
            " install the extra: pip install 'gpupolicy[plot]'"
        )
    return ""


def _can_plot() -> bool:
    """Whether matplotlib (the optional extra ``gpupolicy[plot]``) can be imported."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def run(args: argparse.Namespace) -> int:
    problem = _usage_problem(args)
    if problem:
        print(f"gpupolicy simulate: error: {problem}", file=sys.stderr)
        return 2
    if args.inventory:
        return _run_claims(args)
    return _run_openb(args)


def _claim_progress(strategy: str, done: int, total: int) -> None:
    end = "\n" if done == total else ""
    print(f"\r{strategy}: {done}/{total} arrivals", end=end, file=sys.stderr, flush=True)


def _run_claims(args: argparse.Namespace) -> int:
    from gpupolicy.solver.inputs import read_inputs
    from gpupolicy.solver.result import SolveParams
    from gpupolicy.solver.simulate.claims import replay_claims

    inventory = [read_source(p) for p in args.inventory]
    claims = [read_source(p) for p in args.claims]
    policy = read_source(args.policy) if args.policy else None
    inputs = read_inputs(inventory, claims, policy)
    compiled = inputs.compile()
    params = SolveParams(time_limit_s=args.time_limit, workers=1, seed=0, explain=False)
    trace = "+".join(args.claims)
    progress = _claim_progress if sys.stderr.isatty() else None
    results = [
        replay_claims(compiled.problem, s, trace=trace, window=args.window, params=params, progress=progress)
        for s in args.strategy
    ]
    docs = [r.to_json() for r in results]
    _emit(args, docs, _claims_table, _plot_arrivals)
    bad = [v for r in results for v in r.violations]
    for violation in bad:
        print(f"gpupolicy simulate: verifier: {violation}", file=sys.stderr)
    return 1 if bad else 0


def _claims_table(docs: list[dict[str, object]]) -> str:
    head = (
        f"{'strategy':<10} {'arrivals':>8} {'claims':>6} {'placed':>6} {'failed':>6} {'GPUs full':>9}"
        f" {'partly':>6} {'idle':>5} {'alloc %':>8} {'seconds':>8}"
    )
    lines = [head]
    for d in docs:
        gpus, failed = d["gpus"], d["failed_pods"]
        assert isinstance(gpus, dict) and isinstance(failed, list)
        lines.append(
            f"{d['strategy']!s:<10} {d['arrivals']!s:>8} {d['claims']!s:>6} {d['placed']!s:>6} {len(failed):>6}"
            f" {gpus['full']!s:>9} {gpus['partial']!s:>6} {gpus['idle']!s:>5}"
            f" {float(str(d['allocation'])):>8.2f} {float(str(d['seconds'])):>8.3f}"
        )
    for d in docs:
        reasons = d["failed_reasons"]
        assert isinstance(reasons, dict)
        if reasons:
            listed = ", ".join(f"{name} ({code})" for name, code in reasons.items())
            lines.append(f"{d['strategy']}: not placed: {listed}")
    return "\n".join(lines)


def _run_openb(args: argparse.Namespace) -> int:
    from gpupolicy.solver.simulate.replay import Replay
    from gpupolicy.solver.simulate.run import parse_seeds
    from gpupolicy.solver.simulate.run import run as run_strategy
    from gpupolicy.solver.simulate.trace import check_replayable, parse_nodes, parse_pods

    try:
        seeds = parse_seeds(args.seeds)
    except ValueError as exc:
        print(f"gpupolicy simulate: error: bad --seeds {args.seeds!r}: {exc}", file=sys.stderr)
        return 2
    nodes = parse_nodes(*read_source(args.nodes, "nodes_unreadable"))
    pods = parse_pods(read_source(args.pods, "pods_unreadable")[0], nodes.models, str(args.pods))
    if args.timeline:
        from gpupolicy.plugin.cli import simulate_timeline

        return simulate_timeline.run(args, seeds)
    check_replayable(nodes, pods, args.target, str(args.nodes), str(args.pods))
    trace = args.pods.stem.removeprefix("openb_pod_list_")
    if args.mig:
        return _run_mig(args, nodes, pods, seeds, trace)
    replay = Replay(nodes, pods, target=args.target)
    progress = _progress if sys.stderr.isatty() else None
    summaries = [run_strategy(replay, s, seeds, trace, args.check, progress, args.ceiling) for s in args.strategy]
    docs = [s.to_json() for s in summaries]
    _emit(args, docs, _table, _plot)
    return 0


def _run_mig(args: argparse.Namespace, nodes: object, pods: object, seeds: list[int], trace: str) -> int:
    from gpupolicy.solver.simulate.mig import replay_mig
    from gpupolicy.solver.simulate.trace import Nodes, Pods

    assert isinstance(nodes, Nodes) and isinstance(pods, Pods)
    for strategy in args.strategy:
        if strategy not in ("first-fit", "online", "batch"):
            msg = f"--mig supports first-fit, online and batch, not {strategy}"
            print(f"gpupolicy simulate: error: {msg}", file=sys.stderr)
            return 2
    docs = []
    for strategy in args.strategy:
        results = [replay_mig(nodes, pods, strategy, seed, args.target) for seed in seeds]
        docs.append(_mig_doc(strategy, trace, seeds, results))
    _emit(args, docs, _mig_table, _plot_mig)
    return 0


def _mig_table(docs: list[dict[str, object]]) -> str:
    lines = [f"{'strategy':<12} {'trace':<12} {'seeds':>5} {'MIG slices in use @130 %':>25} {'sd':>6}"]
    for d in docs:
        seeds = d["seeds"]
        assert isinstance(seeds, list)
        lines.append(
            f"{d['strategy']!s:<12} {d['trace']!s:<12} {len(seeds):>5} {_cell(d['slices_in_use_at_130']):>25}"
            f" {_cell(d['slices_in_use_at_130_sd']):>6}"
        )
    return "\n".join(lines)


def _plot_mig(docs: list[dict[str, object]], path: Path) -> None:
    _plot(docs, path, "slices_in_use_at_130", "MIG compute slices in use (%)")


def _emit(
    args: argparse.Namespace,
    docs: list[dict[str, object]],
    table: Callable[[list[dict[str, object]]], str],
    plot: Callable[[list[dict[str, object]], Path], None],
) -> None:
    """Print the documents (``-o json``) or their table, and draw ``--plot``."""
    if args.output == "json":
        print(json.dumps(docs[0] if len(docs) == 1 else docs, indent=1, sort_keys=True))
    else:
        print(table(docs))
    if args.plot:
        plot(docs, args.plot)


def _mig_doc(strategy: str, trace: str, seeds: list[int], results: list[MigResult]) -> dict[str, object]:
    import numpy as np

    from gpupolicy.solver.simulate.run import mean_curve

    def num(x: float) -> float | None:  # NaN (a bucket no event reached) is null in JSON
        return None if np.isnan(x) else round(float(x), 4)

    at = np.array([r.at_130 for r in results])
    kinds = sorted({k for r in results for k in r.failed})
    return {
        "strategy": strategy,
        "trace": trace,
        "variant": "mig-h100-80gb",
        "seeds": seeds,
        "slices_in_use_at_130": num(float(at.mean())),
        "slices_in_use_at_130_sd": num(float(at.std(ddof=1))) if len(at) > 1 else 0.0,
        "slices_in_use_at_130_per_seed": [num(x) for x in at],
        "slices_in_use_final_per_seed": [num(r.final) for r in results],
        "curve": mean_curve([r.curve for r in results]),
        "failed_pods": {k: round(float(np.mean([r.failed.get(k, 0) for r in results])), 1) for k in kinds},
        "seconds": round(sum(r.seconds for r in results), 2),
    }


def _cell(value: object) -> str:
    """A table cell: "-" where there is no value (e.g. the replay never reached 130% arrived)."""
    return "-" if value is None else str(value)


def _table(docs: list[dict[str, object]]) -> str:
    head = (
        f"{'strategy':<12} {'trace':<12} {'seeds':>5} {'alloc@130 %':>11} {'sd':>6} {'failed':>8}"
        f" {'s/seed':>7} {'p99 ms':>7}"
    )
    with_ceiling = any("ceiling_at_130" in d for d in docs)
    if with_ceiling:
        head += f" {'1st fail %':>10} {'ceiling %':>9}"
    lines = [head]
    for d in docs:
        seeds = d["seeds"]
        assert isinstance(seeds, list)
        n = max(len(seeds), 1)
        dm = d["decision_ms"]
        assert isinstance(dm, dict)
        lines.append(
            f"{d['strategy']!s:<12} {d['trace']!s:<12} {n:>5} {_cell(d['allocation_at_130']):>11} "
            f"{_cell(d['allocation_at_130_sd']):>6} {d['failed_pods_total']!s:>8} "
            f"{float(str(d['seconds'])) / n:>7.1f} {dm['p99']!s:>7}"
        )
        if with_ceiling:
            first = d.get("first_gpu_failure_pct")
            lines[-1] += f" {'-' if first is None else round(float(str(first)), 2)!s:>10}"
            lines[-1] += f" {_cell(d.get('ceiling_at_130')):>9}"
    return "\n".join(lines)


def _plot(
    docs: list[dict[str, object]],
    path: Path,
    key: str = "allocation_at_130",
    ylabel: str = "GPU allocation (%)",
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    xs = list(range(131))
    for d in docs:
        curve = d["curve"]
        assert isinstance(curve, list)
        ys = [float("nan") if v is None else float(v) for v in curve]
        at = d[key]
        label = f"{d['strategy']} ({float(str(at)):.2f}%)" if at is not None else str(d["strategy"])
        ax.plot(xs, ys, label=label, linewidth=1.4)
    if key == "allocation_at_130":  # MIG slices round shares up, so they may run above arrived demand
        ax.plot([0, 100, 130], [0, 100, 100], color="grey", linestyle=":", linewidth=1, label="capacity")
    ax.set_xlabel("arrived GPU demand (% of cluster GPU capacity)")
    ax.set_ylabel(ylabel)
    ax.set_xlim(0, 130)
    ax.set_ylim(0, 101)
    trace = docs[0]["trace"] if docs else ""
    what = "allocation" if key == "allocation_at_130" else "MIG slices in use"
    ax.set_title(f"openb {trace}: {what} vs arrived demand")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    inset = ax.inset_axes((0.55, 0.12, 0.42, 0.42))
    for d in docs:
        curve = d["curve"]
        assert isinstance(curve, list)
        inset.plot(xs[100:], [float("nan") if v is None else float(v) for v in curve[100:]], linewidth=1.2)
    inset.set_title("100-130%", fontsize=7)
    inset.tick_params(labelsize=6)
    inset.grid(alpha=0.3)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _plot_arrivals(docs: list[dict[str, object]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    for d in docs:
        curve = d["curve"]
        assert isinstance(curve, list)
        label = f"{d['strategy']} ({float(str(d['allocation'])):.2f}%, {d['placed']} placed)"
        ax.step(range(len(curve)), [float(v) for v in curve], where="post", label=label, linewidth=1.4)
    ax.set_xlabel("arrivals (pods or lone claims, in file order)")
    ax.set_ylabel("GPU allocation (% of GPU capacity)")
    ax.set_ylim(0, 101)
    ax.set_title(f"{docs[0]['trace'] if docs else ''}: allocation vs arrivals")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
