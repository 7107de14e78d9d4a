"""The placement controller side by side with kube-scheduler alone, at scheduler_perf's DRA shape.

Run: ``python benchmarks/controller_vs_scheduler.py [--nodes 500] [--devices 10] [--pods N] [--mig] [-o json]``

Kubernetes' own DRA benchmark (test/integration/scheduler_perf/dra, SchedulingWithResourceClaimTemplate
5000pods_500nodes) fills 500 nodes with 10 devices each; pods with one claim from a ResourceClaimTemplate are
created from 30 workers with no rate limit. Here, on the test bed (etcd, kube-apiserver, kube-scheduler and
kube-controller-manager's resourceclaim-controller, on loopback; Nodes as objects with the ResourceSlices the
policy's slice builder gives, no kubelet), in one invocation and each on a fresh control plane:

* ``scheduler``: ungated pods, kube-scheduler allocates and binds;
* ``controller``: the same pods gated with ``gpupolicy.dev/placement``, ``gpupolicy controller run`` (a process, its
  default batch window and watches) allocates and ungates, kube-scheduler binds.

Per path: pods bound per second (bound / first pod created -> last pod bound), created -> bound p50/p99 (create
returned -> first seen bound by the benchmark's own watch), pods and claims left unplaced, what is left idle on
partly used hardware, and API writes per pod (``apiserver_request_total`` before and after, every client).
Default ``--pods``: nodes x devices (whole GPUs: the cluster full); ``--mig``: dynamic MIG partitions, pods asking
for 3g.40gb and 4g.40gb in turn, nodes x devices of them (half the slices). A path ends when every pod is bound or
nothing moved for ``--stall`` seconds (no pod bound, no claim made, allocated or reserved, no gate removed). Every
process started is stopped and every temp folder removed, on failure and on Ctrl-C too.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from cvs_bed import (  # noqa: E402
    NAMESPACE,
    READ_VERBS,
    WRITE_VERBS,
    BoundWatch,
    Http,
    Shape,
    cpu_seconds,
    create_pods,
    leftover,
    percentile,
    progress,
    set_up,
)

from gpupolicy.plugin.kube import Client  # noqa: E402
from tests.e2e.controlplane import (  # noqa: E402
    ControlPlane,
    build_testbed,
    control_plane,
    die_with_parent,
    free_port,
    start_controller_manager,
    start_scheduler,
)
from tests.scrape import scrape  # noqa: E402

CONTROLLER_METRICS = (
    "gpupolicy_controller_solve_seconds_sum",
    "gpupolicy_controller_solve_seconds_count",
    "gpupolicy_controller_placed_pods_total",
    "gpupolicy_controller_conflicts_total",
)


@contextlib.contextmanager
def controller(plane: ControlPlane, policy: Path, logs: Path, extra: list[str]) -> Iterator[dict[str, Any]]:
    """``gpupolicy controller run`` for the benchmark's namespace, leader before pods come; on exit its metrics and
    pass timings (from its log) are added to the dict it yields, and it is stopped (SIGTERM, then SIGKILL)."""
    port = free_port()
    log = logs / "controller.log"
    argv = [
        sys.executable, "-m", "gpupolicy.plugin.cli.main", "controller", "run",
        f"--kubeconfig={plane.kubeconfig}", f"--policy={policy}", "--identity=bench",
        f"--lease-namespace={NAMESPACE}", f"--namespace={NAMESPACE}", f"--metrics-address=127.0.0.1:{port}",
        "--log-format=json", *extra,
    ]  # fmt: skip
    with log.open("wb") as out:
        popen = subprocess.Popen(argv, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                 start_new_session=True, preexec_fn=die_with_parent)  # fmt: skip
    info: dict[str, Any] = {"pid": popen.pid}
    try:
        deadline = time.monotonic() + 60
        while True:
            if popen.poll() is not None:
                raise RuntimeError(f"the controller exited with {popen.returncode}:\n{log.read_text()[-3000:]}")
            with contextlib.suppress(OSError):
                if scrape(f"http://127.0.0.1:{port}/metrics")("gpupolicy_controller_is_leader") == 1:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"the controller did not lead within 60 s:\n{log.read_text()[-3000:]}")
            time.sleep(0.2)
        yield info
        with contextlib.suppress(OSError, KeyError):
            samples = scrape(f"http://127.0.0.1:{port}/metrics")
            info.update({name.removeprefix("gpupolicy_controller_"): samples(name) for name in CONTROLLER_METRICS})
    finally:
        if popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(popen.pid, signal.SIGTERM)
            try:
                popen.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(popen.pid, signal.SIGKILL)
                popen.wait(timeout=20)
        info["passes"] = passes(log)


def passes(log: Path) -> dict[str, Any]:
    """From the controller's JSON log: per batch, claims, solver seconds, batch line -> solved line (compile and
    solve), solved -> last placed line (writes), and the gap from the previous batch's end (read + wait)."""
    rows: list[dict[str, Any]] = []
    last_end = None
    errors = 0
    for line in log.read_text(errors="replace").splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        ts = _seconds(rec.get("ts", ""))
        msg = rec.get("msg")
        if rec.get("level") in ("error", "warning"):
            errors += 1
        if msg == "batch":
            rows.append({"claims": rec.get("claims"), "start": ts, "gap_s": ts - last_end if last_end else 0.0})
        elif msg == "solved" and rows:
            rows[-1].update(solver_s=rec.get("seconds"), solved=ts, placed=rec.get("placed"))
            last_end = ts
        elif msg == "placed" and rows:
            last_end = rows[-1]["end"] = ts
    out = []
    for r in rows:
        solved = r.get("solved", r["start"])
        out.append({
            "claims": r["claims"], "placed": r.get("placed", 0), "solver_s": r.get("solver_s"),
            "plan_s": round(solved - r["start"], 3), "write_s": round(r.get("end", solved) - solved, 3),
            "gap_s": round(r["gap_s"], 3),
        })  # fmt: skip
    return {"batches": out, "warnings_or_errors": errors}


def _seconds(ts: str) -> float:
    """RFC 3339 with milliseconds (the controller's ``ts``) to epoch seconds."""
    if not ts:
        return 0.0
    from datetime import datetime

    return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


def run_path(name: str, bin_dir: Path, shape: Shape, args: argparse.Namespace) -> dict[str, Any]:
    """One path on a fresh control plane."""
    gated = name == "controller"
    classes, slices = shape.objects()
    with contextlib.ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix=f"gpupolicy-cvs-{name}-")))
        plane = stack.enter_context(control_plane(bin_dir, work))
        start_controller_manager(plane, qps=args.client_qps)
        start_scheduler(plane, qps=args.client_qps)
        api = Client(plane.kubeconfig, pool_size=args.workers + 4, timeout_s=120)
        stack.callback(api.close)
        t0 = time.perf_counter()
        set_up(api, shape, slices, classes, min(args.workers, 16))
        setup_s = time.perf_counter() - t0
        http = Http(plane)
        ctl: dict[str, Any] | None = None
        ctl_stack = stack.enter_context(contextlib.ExitStack())
        if gated:
            policy = work / "policy.yaml"
            policy.write_text(shape.policy)
            ctl = ctl_stack.enter_context(controller(plane, policy, work / "logs", args.controller_arg))
        watch = BoundWatch(http)
        watch.start()
        stack.callback(watch.close)
        pids = {p.name: p.popen.pid for p in plane.processes} | {"benchmark": os.getpid()}
        if ctl is not None:
            pids["gpupolicy-controller"] = ctl["pid"]
        before, cpu_before = http.requests(), cpu_seconds(pids)
        first, writes = time.perf_counter(), 0
        created = create_pods(api, shape, gated, args.workers, args.rate)
        created_s = time.perf_counter() - first
        last, last_change, last_scrape = (0, 0), time.perf_counter(), 0.0
        while len(watch.bound) < shape.pods:
            time.sleep(0.5)
            now = time.perf_counter()
            if now - last_scrape > 5:  # a big page: not every turn
                writes, last_scrape = progress(http.requests()), now
            if (len(watch.bound), writes) != last:
                last, last_change = (len(watch.bound), writes), now
            elif now - last_change > args.stall:
                break
        after, cpu_after = http.requests(), cpu_seconds(pids)
        bound, ungated = dict(watch.bound), dict(watch.ungated)
        left = leftover(api, shape, slices)
        ctl_stack.close()  # stop the controller, so its metrics and pass timings are in
        if args.keep_logs:
            target = Path(args.keep_logs) / name
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(work / "logs", target)
    latencies = [bound[p] - created[p] for p in bound if p in created]
    gate_wait = [ungated[p] - created[p] for p in ungated if p in created]  # the scheduler path: about 0
    end = max(bound.values()) if bound else first
    delta = after - before
    writes = {f"{v} {r}": n for (v, r), n in sorted(delta.items()) if v in WRITE_VERBS and n}
    conflicts = {r: n for (v, r), n in sorted(delta.items()) if v == "CONFLICT" and n}
    cpu = {k: round(cpu_after[k] - cpu_before[k], 1) for k in cpu_after if k in cpu_before}
    reads = {f"{v} {r}": n for (v, r), n in sorted(delta.items()) if v in READ_VERBS and n}
    row: dict[str, Any] = {
        "pods": shape.pods,
        "bound": len(bound),
        "pods_per_s": round(len(bound) / (end - first), 1) if bound else 0.0,
        "bound_p50_s": round(percentile(latencies, 50), 2),
        "bound_p99_s": round(percentile(latencies, 99), 2),
        "bound_max_s": round(max(latencies), 2) if latencies else None,
        "ungated_p50_s": round(percentile(gate_wait, 50), 2),
        "ungated_p99_s": round(percentile(gate_wait, 99), 2),
        "last_bound_s": round(end - first, 1),
        "create_s": round(created_s, 1),
        "setup_s": round(setup_s, 1),
        "unplaced": left.unplaced_pods,
        "unallocated_claims": left.unallocated_claims,
        "partly_used": left.partly_used,
        "idle_on_partly_used": left.idle,
        "idle_unit": left.unit,
        "double_allocated": left.double_allocated,
        "writes_per_pod": round(sum(writes.values()) / shape.pods, 2),
        "lists_per_pod": round(sum(n for k, n in reads.items() if k.startswith("LIST")) / shape.pods, 3),
        "writes": writes,
        "conflicts": conflicts,
        "reads": reads,
        "cpu_s": cpu,
    }
    if ctl is not None:
        row["controller"] = ctl
    return row


def text_report(out: dict[str, Any]) -> str:
    keys = [
        "pods", "bound", "pods_per_s", "bound_p50_s", "bound_p99_s", "bound_max_s", "ungated_p50_s", "ungated_p99_s",
        "last_bound_s", "create_s",
        "unplaced", "unallocated_claims", "partly_used", "idle_on_partly_used", "writes_per_pod", "lists_per_pod",
    ]  # fmt: skip
    lines = [f"{'':22} {'scheduler':>12} {'controller':>12}"]
    for key in keys:
        lines.append(f"{key:22} " + " ".join(f"{out[p].get(key, '-')!s:>12}" for p in ("scheduler", "controller")))
    lines.append(f"ratio (controller / scheduler pods/s): {out['ratio']}")
    lines.append(f"idle unit: {out['scheduler'].get('idle_unit', out['controller'].get('idle_unit'))}")
    for path in ("scheduler", "controller"):
        if out[path]:
            lines.append(f"{path} writes: {out[path]['writes']} (409s: {out[path]['conflicts']})")
            lines.append(f"{path} CPU seconds while pods came: {out[path]['cpu_s']}")
    batches = (out["controller"].get("controller") or {}).get("passes", {}).get("batches", [])
    if batches:
        lines.append("controller batches (claims, placed, solver_s, plan_s, write_s, gap_s):")
        lines += [f"  {b['claims']} {b['placed']} {b['solver_s']} {b['plan_s']} {b['write_s']} {b['gap_s']}"
                  for b in batches]  # fmt: skip
    lines.append(f"# {out['machine']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=500)
    parser.add_argument("--devices", type=int, default=10, help="GPUs per node")
    parser.add_argument("--pods", type=int, default=None, help="default: nodes x devices")
    parser.add_argument("--mig", action="store_true", help="dynamic MIG partitions, 3g.40gb and 4g.40gb pods")
    parser.add_argument("--paths", nargs="+", choices=["scheduler", "controller"], default=["scheduler", "controller"])
    parser.add_argument("--workers", type=int, default=30, help="threads creating pods (scheduler_perf: 30)")
    parser.add_argument(
        "--rate", type=float, default=0.0, help="pods created per second (default 0: as fast as the workers can)"
    )
    parser.add_argument(
        "--client-qps",
        type=int,
        default=5000,
        help="kube-scheduler's and kube-controller-manager's client QPS and burst (scheduler_perf: 5000)",
    )
    parser.add_argument("--stall", type=float, default=60.0, help="end a path after this long with no pod bound")
    parser.add_argument("--controller-arg", action="append", default=[], help="passed to gpupolicy controller run")
    parser.add_argument("--keep-logs", default="", help="copy each path's component logs to DIR/<path>")
    parser.add_argument("-o", "--output", choices=["text", "json"], default="text")
    args = parser.parse_args(argv)
    if min(args.nodes, args.devices, args.pods if args.pods is not None else 1) < 1:
        parser.error("--nodes, --devices and --pods must be at least 1")
    shape = Shape(args.nodes, args.devices, args.pods or args.nodes * args.devices, args.mig)
    # SIGTERM unwinds like Ctrl-C, so every process is stopped and every temp folder removed
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    env_bin = os.environ.get("GPUPOLICY_TESTBED_BIN")
    bin_dir = Path(env_bin) if env_bin else build_testbed(45 * 60)
    out: dict[str, Any] = {"scheduler": {}, "controller": {}}
    for path in args.paths:
        out[path] = run_path(path, bin_dir, shape, args)
        print(f"# {path}: {out[path]['bound']}/{shape.pods} bound, {out[path]['pods_per_s']} pods/s",
              file=sys.stderr, flush=True)  # fmt: skip
    sched, ctl = out["scheduler"].get("pods_per_s"), out["controller"].get("pods_per_s")
    out["ratio"] = round(ctl / sched, 2) if sched and ctl is not None else None
    out["shape"] = asdict(shape)
    out["create_rate_per_s"] = args.rate or None
    cores = os.cpu_count()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    out["machine"] = f"{platform.node()} {cores} cores, load {load:.1f}, {when}, python {platform.python_version()}"
    print(json.dumps(out, indent=2) if args.output == "json" else text_report(out))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("interrupted; everything started was stopped", file=sys.stderr)
        sys.exit(130)
