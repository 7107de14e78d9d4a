"""``gpupolicy plugin run|withdraw|fault``: the kubelet DRA plugin.

``run`` serves kubelet until SIGTERM/SIGINT (then removes its sockets and exits 0). ``withdraw``
deletes the node's ResourceSlices (for uninstall). ``fault`` injects a GPU fault into a plugin
running with the simulated NVML backend (demo and tests).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from gpupolicy.plugin.cli import service

if TYPE_CHECKING:
    from gpupolicy.policy.builder import PublishFor

# gpupolicy.policy.builder.DEFAULT_DRIVER, not imported here: every `gpupolicy` command loads this module.
DEFAULT_DRIVER = "gpu.gpupolicy.dev"


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--driver-name", default=None, help=f"DRA driver name (default: the policy's, else {DEFAULT_DRIVER})"
    )
    parser.add_argument(
        "--node-name",
        default=os.environ.get("NODE_NAME") or socket.gethostname(),
        help="this node's name; also the pool name (default: $NODE_NAME or the host name)",
    )
    parser.add_argument("--kubeconfig", type=Path, default=None, help="kubeconfig file (default: in-cluster config)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="plugin_command", metavar="ACTION")
    sub.required = True
    run = sub.add_parser("run", help="serve kubelet on this node")
    _common(run)
    run.add_argument("--policy", type=Path, default=None, help="policy file deciding how GPUs are published")
    run.add_argument(
        "--plugin-dir",
        type=Path,
        default=Path("/var/lib/kubelet/plugins"),
        help="DRA socket <dir>/<driver>/dra.sock (default: /var/lib/kubelet/plugins)",
    )
    run.add_argument(
        "--registry-dir",
        type=Path,
        default=Path("/var/lib/kubelet/plugins_registry"),
        help="kubelet's plugin registry (default: /var/lib/kubelet/plugins_registry)",
    )
    run.add_argument("--cdi-root", type=Path, default=Path("/var/run/cdi"), help="CDI specs (default: /var/run/cdi)")
    run.add_argument(
        "--state-dir",
        type=Path,
        default=Path("/var/lib/gpupolicy"),
        help="checkpoint and sim state (default: /var/lib/gpupolicy)",
    )
    run.add_argument(
        "--nvml",
        default="real",
        help="'real', 'sim:<spec>' (e.g. sim:8xH100-80GB, sim:2xA100-40GB:mig) or 'sim:@<cluster.yaml>'",
    )
    run.add_argument(
        "--resync",
        type=float,
        default=30.0,
        help="seconds between ResourceSlice checks besides the watches' (their fallback)",
    )
    service.add_arguments(run)
    run.add_argument("-v", "--verbose", action="store_true", help="the same as --log-level=debug")
    withdraw = sub.add_parser("withdraw", help="delete this node's ResourceSlices (uninstall)")
    _common(withdraw)
    fault = sub.add_parser("fault", help="inject a fault into a plugin running with --nvml sim:...")
    fault.add_argument("--state-dir", type=Path, required=True)
    fault.add_argument("--gpu", type=int, required=True, help="GPU index")
    fault.add_argument("kind", choices=["xid", "gpu-lost", "recovered"])
    fault.add_argument("--xid", type=int, default=79)


def _driver_name(args: argparse.Namespace, policy_driver: str | None = None) -> str:
    """``--driver-name``, else the policy's, else the default."""
    return str(args.driver_name or policy_driver or DEFAULT_DRIVER)


def _load_policy(path: Path | None) -> tuple[PublishFor | None, str | None]:
    """The policy file's publishing rule and driver name (read once, through the CLI's bounded reader),
    or ``(None, None)`` without one."""
    if path is None:
        return None, None
    from gpupolicy.plugin.cli.files import read_source
    from gpupolicy.policy.policyfile.compile import load_policy

    compiled = load_policy(*read_source(path))
    return compiled.publish_for, compiled.driver_name


def _run(args: argparse.Namespace) -> int:
    from gpupolicy.plugin.kubelet.driver import Options, Plugin
    from gpupolicy.plugin.metrics import MetricsServer

    if problem := service.setup(args, "gpupolicy-plugin", "debug" if args.verbose else None):
        print(f"gpupolicy plugin: {problem}", file=sys.stderr)
        return 2
    log = logging.getLogger(__name__)
    publish_for, policy_driver = _load_policy(args.policy)  # an invalid policy: main() prints its diagnostics
    options = Options(
        node=args.node_name,
        driver=_driver_name(args, policy_driver),
        policy=args.policy,
        plugin_dir=args.plugin_dir,
        registry_dir=args.registry_dir,
        cdi_root=args.cdi_root,
        state_dir=args.state_dir,
        kubeconfig=args.kubeconfig,
        nvml=args.nvml,
        resync_s=args.resync,
    )
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    try:
        plugin = Plugin(options, publish_for=publish_for)
        plugin.start()
    except Exception as exc:
        if type(exc).__name__ == "DiagnosticError":  # an invalid policy file: main() prints its diagnostics
            raise  # a bad --nvml spec, no NVML, no kubeconfig, a socket folder we cannot use
        log.debug("start-up failed", exc_info=True)
        print(f"error: cannot start the plugin: {exc}", file=sys.stderr)
        return 1
    server = None
    try:
        if args.metrics_address:
            server = MetricsServer(plugin.metrics.registry, args.metrics_address)
            log.info("metrics", extra={"address": server.url})
        while not stop.wait(0.5):
            pass
    except OSError as exc:
        print(f"error: cannot serve metrics on {args.metrics_address}: {exc}", file=sys.stderr)
        return 1
    finally:
        plugin.stop()
        if server is not None:
            server.close()
    return 0


def _withdraw(args: argparse.Namespace) -> int:
    from gpupolicy.plugin.kube import ApiError
    from gpupolicy.plugin.kubelet.api import NodeApi
    from gpupolicy.plugin.kubelet.publish import Publisher

    publisher = Publisher(NodeApi(args.kubeconfig), _driver_name(args), args.node_name, lambda ref, gen: [])
    try:
        count = publisher.withdraw()
    except ApiError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"deleted {count} ResourceSlice(s) of node {args.node_name}")
    return 0


def _fault(args: argparse.Namespace) -> int:
    from gpupolicy.plugin.kubelet.nvml.sim import inject_fault
    from gpupolicy.plugin.kubelet.nvml.types import EventKind

    inject_fault(args.state_dir / "sim-nvml.json", args.gpu, EventKind(args.kind), args.xid)
    return 0


def run(args: argparse.Namespace) -> int:
    action = {"run": _run, "withdraw": _withdraw, "fault": _fault}[args.plugin_command]
    return action(args)
