"""``gpupolicy discover``: the GPUs NVML reports on this node, or the ResourceSlices they yield."""

from __future__ import annotations

import argparse
import socket
import sys
from pathlib import Path

# gpupolicy.policy.builder.DEFAULT_DRIVER, not imported here: every `gpupolicy` command loads this module.
DEFAULT_DRIVER = "gpu.gpupolicy.dev"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--nvml", default="real", help="'real', 'sim:<spec>' (e.g. sim:2xA100-40GB:mig,1xL4) or 'sim:@<cluster.yaml>'"
    )
    parser.add_argument("--policy", type=Path, default=None, help="policy file (for -o yaml)")
    parser.add_argument("--node-name", default=socket.gethostname())
    parser.add_argument("--driver-name", default=None)
    parser.add_argument("-o", "--output", choices=["table", "yaml"], default="table")


def _table(gpus: list[object]) -> str:
    from gpupolicy.plugin.kubelet.nvml.types import Gpu

    rows = [("MINOR", "UUID", "PRODUCT", "MEMORY", "ARCH", "CC", "PCI", "MIG", "MIG DEVICES")]
    for gpu in gpus:
        assert isinstance(gpu, Gpu)
        mig = "enabled" if gpu.mig_enabled else ("disabled" if gpu.mig_capable else "-")
        instances = ",".join(f"{m.profile}@{m.start}" for m in gpu.mig_devices) or "-"
        memory = f"{gpu.memory_bytes / 2**30:.1f}GiB"
        rows.append(
            (
                str(gpu.minor),
                gpu.uuid,
                gpu.product_name,
                memory,
                gpu.architecture,
                gpu.cuda_compute_capability,
                gpu.pci_bus_id,
                mig,
                instances,
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows) + "\n"


def run(args: argparse.Namespace) -> int:
    from gpupolicy.plugin.kubelet.driver import default_publish_for, open_nvml
    from gpupolicy.plugin.kubelet.nvml.types import NvmlError

    try:
        nvml = open_nvml(args.nvml, args.node_name, None)
        gpus = nvml.gpus()
    except (NvmlError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.output == "table":
        sys.stdout.write(_table(list(gpus)))
        return 0
    from gpupolicy.plugin.kubelet.discovery import build_inventory
    from gpupolicy.policy.builder import PublishFor, build_slices
    from gpupolicy.policy.gpu import EXCLUSIVE
    from gpupolicy.policy.k8s.dump import dump_objects

    publish_for: PublishFor
    if args.policy:
        from gpupolicy.plugin.cli.files import read_source
        from gpupolicy.policy.policyfile.compile import load_policy

        compiled = load_policy(*read_source(args.policy))
        publish_for, driver = compiled.publish_for, compiled.driver_name
    else:
        publish_for, driver = default_publish_for(gpus), DEFAULT_DRIVER
    driver = args.driver_name or driver
    inventory = build_inventory(gpus, publish_for, driver=driver)
    slices = build_slices(
        args.node_name,
        inventory.gpus,
        publish_for=lambda g, _v: inventory.publish.get(g.uuid, EXCLUSIVE),
        driver=driver,
    )
    sys.stdout.write(dump_objects(slices))
    return 0
