"""``gpupolicy controller run``: the placement controller.

    gpupolicy controller run [--kubeconfig FILE] [--policy FILE] [--batch-window S] [--poll-interval S]
                             [--time-limit S] [--workers N] [--seed N] [--strategy optimal|first-fit|best-fit]
                             [--write-parallelism N] [--max-batch N] [--namespace NS]... [--no-watch] [--resync S]
                             [--identity ID] [--lease-namespace NS] [--lease-name NAME] [--lease-duration S]
                             [--preemption] [--defragment] [--max-disruptions-per-hour N]
                             [--preemption-timeout S] [--metrics-address HOST:PORT] [--log-format json|text]
                             [--log-level debug|info|warning|error] [--once]

    gpupolicy controller propose [--kubeconfig FILE] [--policy FILE] [--margin N] [-o json|yaml]

Pods opt in with the scheduling gate ``gpupolicy.dev/placement``. Runs until SIGTERM/SIGINT (exit 0), giving its
Lease up on the way out. ``--once`` does one pass without waiting for a batch window (exit 0 when nothing stays
unplaced or another replica holds the Lease, 1 otherwise, or when the API server fails: the error is logged).
``propose`` prints a rebalancing proposal and never writes.
Exit codes: 0 ok, 1 unplaced (``--once``), an API error (``--once``), an unreadable kubeconfig or invalid input,
2 usage.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import sys
import threading
import uuid
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from gpupolicy.plugin.cli import service
from gpupolicy.plugin.cli.files import read_source

if TYPE_CHECKING:
    from gpupolicy.plugin.controller.leader import LeaderElector
    from gpupolicy.plugin.controller.loop import Controller
    from gpupolicy.plugin.kube import Client


def renew_deadline(lease_duration_s: float) -> float:
    """client-go's proportions: a 15 s Lease is renewed within 10 s, else the leader stops writing."""
    return lease_duration_s * 2 / 3


def clients(kubeconfig: Path | None, lease_duration_s: float) -> tuple[Client, Client]:
    """The controller's two clients: one for reads (lists of the whole cluster may take a while: 30 s), one for
    writes and the Lease, whose every request ends, and tells the API server to end (``?timeout=``), within half the
    margin the renew deadline leaves before the Lease expires, with no retry after ``Retry-After``: a write checked
    just before the renew deadline is over before another replica can take the Lease."""
    from gpupolicy.plugin.kube import Client, Retry

    timeout = (lease_duration_s - renew_deadline(lease_duration_s)) / 2
    reads = Client(kubeconfig)
    try:
        writes = Client(kubeconfig, timeout_s=timeout, retry=Retry(max_retries=0), server_timeout=True)
    except BaseException:
        reads.close()
        raise
    return reads, writes


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="controller_command", metavar="ACTION")
    sub.required = True
    run = sub.add_parser("run", help="place gated pods' claims with the solver, then ungate them")
    run.add_argument("--kubeconfig", type=Path, default=None, help="kubeconfig file (default: in-cluster config)")
    run.add_argument("--policy", type=Path, default=None, help="a GpuPolicy file (classes, rules, objective)")
    run.add_argument("--batch-window", type=float, default=0.5, metavar="S", help="collect pending pods this long")
    run.add_argument("--poll-interval", type=float, default=0.5, metavar="S", help="seconds between cluster reads")
    run.add_argument(
        "--namespace", action="append", default=[], metavar="NS", help="only gated pods of NS (repeatable; default all)"
    )
    run.add_argument("--no-watch", action="store_true", help="poll with lists instead of waking on watch events")
    run.add_argument("--resync", type=float, default=10.0, metavar="S", help="with watches: a full pass this often")
    run.add_argument("--write-parallelism", type=int, default=8, metavar="N", help="units written at once")
    run.add_argument(
        "--max-batch", type=int, default=500, metavar="N", help="units per batch (a full batch closes at once)"
    )
    run.add_argument("--strategy", choices=("optimal", "first-fit", "best-fit"), default="optimal")
    run.add_argument("--time-limit", type=float, metavar="S", help="solver time limit per batch (default: policy, 10)")
    run.add_argument("--workers", type=int, metavar="N", help="CP-SAT workers (default: policy, else 1)")
    run.add_argument("--seed", type=int, metavar="N", help="CP-SAT random seed (default: policy, else 0)")
    run.add_argument("--identity", default=None, help="this replica's name in the Lease (default: host-pid-random)")
    run.add_argument("--lease-namespace", default="kube-system")
    run.add_argument("--lease-name", default="gpupolicy-controller")
    run.add_argument("--lease-duration", type=float, default=15.0, metavar="S")
    run.add_argument("--no-leader-election", action="store_true", help="write without holding the Lease (one replica)")
    run.add_argument(
        "--preemption", action="store_true", help="evict pods of a strictly lower priority to place gated ones"
    )
    run.add_argument(
        "--defragment", action="store_true", help='move pods marked gpupolicy.dev/movable: "true" to make room'
    )
    run.add_argument(
        "--max-disruptions-per-hour", type=int, default=10, metavar="N", help="moves by --defragment (0: none)"
    )
    run.add_argument(
        "--preemption-timeout", type=float, default=120.0, metavar="S", help="how long evicted pods' devices are held"
    )
    service.add_arguments(run)
    run.add_argument("--once", action="store_true", help="one pass, no batch window, then exit")
    propose = sub.add_parser("propose", help="dry run: would moving not-yet-started claims free whole GPUs?")
    propose.add_argument("--kubeconfig", type=Path, default=None, help="kubeconfig file (default: in-cluster config)")
    propose.add_argument("--policy", type=Path, default=None, help="a GpuPolicy file (classes, rules, objective)")
    propose.add_argument("--margin", type=int, default=1, metavar="N", help="propose when at least N GPUs are freed")
    propose.add_argument("--strategy", choices=("optimal", "first-fit", "best-fit"), default="optimal")
    propose.add_argument("--time-limit", type=float, metavar="S", help="solver time limit (default: policy, 10)")
    propose.add_argument("--workers", type=int, metavar="N")
    propose.add_argument("--seed", type=int, metavar="N")
    propose.add_argument("-o", "--output", choices=("json", "yaml"), default="json")


def _settings(args: argparse.Namespace) -> object:
    from gpupolicy.plugin.controller.placer import Settings
    from gpupolicy.policy.policyfile.compile import load_policy
    from gpupolicy.solver.result import SolveParams

    policy = read_source(args.policy) if args.policy else None
    limits = load_policy(*policy).solver_limits if policy is not None else None
    params = SolveParams(
        time_limit_s=args.time_limit or (limits.time_limit_seconds if limits else 10.0),
        workers=args.workers or (limits.workers if limits else 1),
        seed=args.seed if args.seed is not None else (limits.seed if limits else 0),
        explain=True,
        explain_total_s=10.0,
    )
    return Settings(policy=policy, strategy=args.strategy, params=params)


def run(args: argparse.Namespace) -> int:
    if args.controller_command == "propose":
        return _propose(args)
    return _run(args)


def _propose(args: argparse.Namespace) -> int:
    import json

    from gpupolicy.plugin.cli.ranges import solver_options
    from gpupolicy.plugin.controller.placer import Settings
    from gpupolicy.plugin.controller.rebalance import propose
    from gpupolicy.plugin.controller.snapshot import Snapshot
    from gpupolicy.plugin.kube import Client
    from gpupolicy.policy.yamlsrc import dump_yaml

    if problem := solver_options(args):
        print(f"gpupolicy controller: {problem}", file=sys.stderr)
        return 2
    settings = _settings(args)
    assert isinstance(settings, Settings)
    api = Client(args.kubeconfig)
    try:
        snapshot = Snapshot.read(api)
        proposal = propose(snapshot, api.list("pods"), settings, args.margin).to_json()
    finally:
        api.close()
    text = json.dumps(proposal, indent=2, sort_keys=True) + "\n" if args.output == "json" else dump_yaml([proposal])
    sys.stdout.write(text)
    return 0


def _run_problem(args: argparse.Namespace) -> str:
    from gpupolicy.plugin.cli.ranges import first, integer_in, number_in, solver_options

    day = 86400.0
    return first(
        solver_options(args),
        number_in("--batch-window", args.batch_window, 0, day),
        number_in("--poll-interval", args.poll_interval, 0, day),
        number_in("--resync", args.resync, 0, day, above_low=True),
        number_in("--lease-duration", args.lease_duration, 1, day),
        integer_in("--write-parallelism", args.write_parallelism, 1, 256),
        integer_in("--max-batch", args.max_batch, 1, 1000000),
        integer_in("--max-disruptions-per-hour", args.max_disruptions_per_hour, 0, 100000),
        number_in("--preemption-timeout", args.preemption_timeout, 0, day, above_low=True),
    )


def _run(args: argparse.Namespace) -> int:
    from gpupolicy.plugin.controller.leader import LeaderElector
    from gpupolicy.plugin.controller.loop import Config, Controller
    from gpupolicy.plugin.controller.metrics import Metrics
    from gpupolicy.plugin.controller.placer import Settings
    from gpupolicy.plugin.controller.preempt import Options
    from gpupolicy.plugin.metrics import MetricsServer

    if problem := _run_problem(args) or service.setup(args, "gpupolicy-controller"):
        print(f"gpupolicy controller: {problem}", file=sys.stderr)
        return 2
    log = logging.getLogger(__name__)
    settings = _settings(args)
    assert isinstance(settings, Settings)
    identity = args.identity or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    try:
        api, writes = clients(args.kubeconfig, args.lease_duration)
    except Exception as exc:  # the kubernetes config loader raises ConfigException, YAML and OS errors
        where = args.kubeconfig or "the in-cluster service account"
        print(f"gpupolicy controller: cannot load {where}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    metrics = Metrics()
    elector = None
    if not args.no_leader_election:
        elector = LeaderElector(
            writes,
            identity,
            args.lease_namespace,
            args.lease_name,
            args.lease_duration,
            renew_deadline(args.lease_duration),
        )
    config = Config(
        identity,
        settings,
        args.batch_window,
        args.poll_interval,
        max(1, args.write_parallelism),
        tuple(args.namespace),
        watch=not args.no_watch,
        max_batch=args.max_batch,
        resync_s=min(args.resync, args.lease_duration / 3),
        disrupt=Options(args.preemption, args.defragment, args.max_disruptions_per_hour, args.preemption_timeout),
    )
    controller = Controller(api, config, elector, metrics, writes=writes)
    if args.once:
        try:
            return _once(controller, elector, log)
        finally:
            api.close()
            writes.close()
    try:
        server = MetricsServer(metrics.registry, args.metrics_address) if args.metrics_address else None
    except OSError as exc:
        print(f"gpupolicy controller: cannot serve metrics on {args.metrics_address}: {exc}", file=sys.stderr)
        return 1
    if server is not None:
        log.info("metrics", extra={"address": server.url})
    stop = threading.Event()

    def handle(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)
    started = {"identity": identity, "policy": str(args.policy or ""), "batch_window": args.batch_window,
               "preemption": args.preemption, "defragment": args.defragment}  # fmt: skip
    log.info("started", extra=started)
    controller.run(stop)
    log.info("stopped", extra={"identity": identity})
    if server is not None:
        server.close()
    api.close()
    writes.close()
    return 0


def _once(controller: Controller, elector: LeaderElector | None, log: logging.Logger) -> int:
    """One pass: 0 when nothing stays unplaced or another replica holds the Lease; 1 when something stays
    unplaced or the API server fails (the error is logged, not a traceback)."""
    from gpupolicy.plugin.kube import ApiError

    if elector is not None and not elector.try_acquire_or_renew():
        if elector.last_error is not None:
            log.error("API call failed; nothing done", extra={"error": str(elector.last_error)})
            return 1
        log.warning("another replica holds the Lease; nothing done")
        return 0
    try:
        result = controller.step(force=True)
    except ApiError as exc:
        log.error("API call failed; the pass stopped", extra={"error": str(exc)})
        return 1
    finally:
        if elector is not None:
            elector.release()
    return 1 if result.unplaced else 0
