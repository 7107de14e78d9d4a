"""``gpupolicy solve``: dry-run placement of pending claims on an inventory.

    gpupolicy solve --inventory FILE... --claims FILE... [--policy FILE]
    gpupolicy solve --kubeconfig FILE [--claims FILE...] [--inventory FILE...] [--policy FILE]
                    [--strategy optimal|first-fit|best-fit] [--time-limit S] [--workers N] [--seed N]
                    [-o table|wide|json|yaml] [--explain] [--compare first-fit|best-fit] [--no-timing]
                    [--preempt] [--defragment [--max-moves N]]

``--kubeconfig`` reads the live cluster (ResourceSlices, DeviceClasses, Nodes, allocated claims as the inventory;
pending claims and unscheduled Pods as the claims; see ``gpupolicy.plugin.cli.live``); files given as well add to
it (extra hypothetical claims to place against the live state). Nothing is written to the cluster.

Exit codes: 0 every claim placed; 1 some claim unplaced, or invalid input; 2 usage.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from gpupolicy.plugin.cli.files import read_source

EXIT_OK, EXIT_UNPLACED, EXIT_USAGE = 0, 1, 2
EXPLAIN_ALWAYS_UP_TO = 200  # unplaced claims explained without --explain up to this many claims


def add_input_arguments(parser: argparse.ArgumentParser, claims_help: str) -> None:
    """``--inventory FILE...`` and ``--claims FILE...``, as solve and simulate read them."""
    parser.add_argument(
        "--inventory",
        nargs="+",
        action="extend",
        default=[],
        metavar="FILE",
        help="ResourceSlices, cluster descriptions, Nodes, DeviceClasses, allocated ResourceClaims",
    )
    parser.add_argument("--claims", nargs="+", action="extend", default=[], metavar="FILE", help=claims_help)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_input_arguments(parser, "ResourceClaims, ResourceClaimTemplates, Pods and workloads to place")
    parser.add_argument(
        "--kubeconfig",
        metavar="FILE",
        help="read slices, classes, nodes, allocations and pending claims from this cluster (read only)",
    )
    parser.add_argument(
        "-n",
        "--namespace",
        metavar="NS",
        help="with --kubeconfig: place only this namespace's pending claims and pods (allocations everywhere count)",
    )
    parser.add_argument("--policy", metavar="FILE", help="a GpuPolicy file (device classes, rules, objective)")
    parser.add_argument("--strategy", choices=("optimal", "first-fit", "best-fit"), default="optimal")
    parser.add_argument("--time-limit", type=float, metavar="S", help="solver time limit in seconds")
    parser.add_argument("--workers", type=int, metavar="N", help="CP-SAT workers (1 with a fixed seed is reproducible)")
    parser.add_argument("--seed", type=int, metavar="N", help="CP-SAT random seed")
    parser.add_argument("-o", "--output", choices=("table", "wide", "json", "yaml"), default="table")
    parser.add_argument("--explain", action="store_true", help="explain every unplaced claim")
    parser.add_argument("--compare", choices=("first-fit", "best-fit", "optimal"), help="also run this strategy")
    parser.add_argument("--no-timing", action="store_true", help="leave wall-clock times out of the output")
    parser.add_argument(
        "--preempt",
        action="store_true",
        help="evict allocated claims of a strictly lower priority (policy priority tiers) to place pending ones",
    )
    parser.add_argument(
        "--defragment",
        action="store_true",
        help='move allocations whose pods opted in (gpupolicy.dev/movable: "true") to place pending claims',
    )
    parser.add_argument("--max-moves", type=int, metavar="N", help="with --defragment: move at most N pods")
    parser.add_argument(
        "--previous",
        metavar="FILE",
        help="an earlier plan (a solve -o yaml|json output, or allocated ResourceClaims): keep its devices on ties",
    )


def _usage_problem(args: argparse.Namespace) -> str:
    from gpupolicy.plugin.cli.ranges import solver_options

    if problem := solver_options(args):
        return problem
    if (args.preempt or args.defragment) and args.strategy != "optimal":
        return "--preempt and --defragment need --strategy optimal (the baselines never give an allocation up)"
    if args.max_moves is not None and not args.defragment:
        return "--max-moves limits --defragment; give --defragment too"
    if args.max_moves is not None and not 0 <= args.max_moves <= 1_000_000:
        return f"--max-moves must be in [0, 1000000], got {args.max_moves}"
    if args.namespace and not args.kubeconfig:
        return "--namespace filters what --kubeconfig reads; give --kubeconfig FILE too"
    if not args.kubeconfig and not args.inventory:
        return "give --inventory FILE... or --kubeconfig FILE"
    if not args.kubeconfig and not args.claims:
        return "give --claims FILE... (or --kubeconfig FILE to read pending claims from a cluster)"
    return ""


def _progress(enabled: bool) -> Any:
    started = time.perf_counter()

    def report(message: str) -> None:
        if enabled and time.perf_counter() - started > 1.0:
            print(f"gpupolicy solve: {message}", file=sys.stderr)

    return report


def run(args: argparse.Namespace) -> int:
    from gpupolicy.policy.yamlsrc import dump_yaml
    from gpupolicy.solver.inputs import read_inputs
    from gpupolicy.solver.output import document
    from gpupolicy.solver.problem import Disruption
    from gpupolicy.solver.result import SolveParams
    from gpupolicy.solver.solve import solve
    from gpupolicy.solver.table import render_compare, render_table

    problem = _usage_problem(args)
    if problem:
        print(f"gpupolicy solve: {problem}", file=sys.stderr)
        return EXIT_USAGE
    inventory = [read_source(p) for p in args.inventory]
    claims = [read_source(p) for p in args.claims]
    if args.kubeconfig:
        from gpupolicy.plugin.cli.live import read_cluster

        live = read_cluster(args.kubeconfig, args.namespace, disruption=args.preempt or args.defragment)
        inventory, claims = [*live.inventory, *inventory], [*live.claims, *claims]
    policy = read_source(args.policy) if args.policy else None
    inputs = read_inputs(inventory, claims, policy)
    disruption = Disruption(preempt=args.preempt, defragment=args.defragment, max_moves=args.max_moves)
    compiled = inputs.compile(disruption)
    if args.previous:
        from gpupolicy.solver.previous import with_previous

        compiled.problem = with_previous(compiled.problem, *read_source(args.previous))
    limits = inputs.policy.solver_limits if inputs.policy is not None else None
    params = SolveParams(
        time_limit_s=args.time_limit or (limits.time_limit_seconds if limits else 30.0),
        workers=args.workers or (limits.workers if limits else 1),
        seed=args.seed if args.seed is not None else (limits.seed if limits else 0),
        explain=args.explain or len(compiled.problem.claims) <= EXPLAIN_ALWAYS_UP_TO,
    )
    progress = _progress(sys.stderr.isatty())
    solution = solve(compiled.problem, args.strategy, params, progress)
    other = solve(compiled.problem, args.compare, params) if args.compare else None
    progress(f"done in {solution.wall_s:.1f} s")
    if args.output in ("json", "yaml"):
        doc = document(compiled, solution, other)
        if not args.no_timing:
            doc["summary"]["wallSeconds"] = round(solution.wall_s, 3)
        text = json.dumps(doc, indent=2, sort_keys=True) + "\n" if args.output == "json" else dump_yaml([doc])
    elif other is not None:
        text = render_compare(compiled, [solution, other], timing=not args.no_timing)
    else:
        text = render_table(
            compiled, solution, wide=args.output == "wide", explain=args.explain, timing=not args.no_timing
        )
    sys.stdout.write(text)
    return EXIT_OK if not solution.unplaced else EXIT_UNPLACED
