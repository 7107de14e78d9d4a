"""Shared set-up for plugin tests: a simulated node with a fake API server behind a Preparer."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gpupolicy.plugin.kubelet.cdi import CdiRegistry
from gpupolicy.plugin.kubelet.checkpoint import Checkpoint
from gpupolicy.plugin.kubelet.claims import ClaimRef
from gpupolicy.plugin.kubelet.discovery import Inventory, build_inventory
from gpupolicy.plugin.kubelet.driver import Options, Plugin
from gpupolicy.plugin.kubelet.nvml.sim import SimNvml
from gpupolicy.plugin.kubelet.prepare_loop import LoopPreparer
from gpupolicy.plugin.kubelet.sharing import FakeRunner
from gpupolicy.policy.builder import PublishFor
from gpupolicy.policy.device import DeviceView
from gpupolicy.policy.gpu import GpuInfo, Mode, Publish
from tests.fakes.kube import FakeKube
from tests.scrape import parse

DRIVER = "gpu.gpupolicy.dev"
NODE = "node-a"
SPEC = "2xA100-40GB:mig,1xH100-80GB"
"""The simulated node of ``PluginNode``."""
DYNAMIC = Publish(mode=Mode.MIG, mig_dynamic=True)


def dynamic_a100(gpu: GpuInfo, _view: DeviceView) -> Publish:
    """``publish_for``: GPUs in MIG mode as dynamic MIG, the rest whole."""
    return DYNAMIC if gpu.mig_enabled else Publish()


def until(condition: Callable[[], Any], timeout_s: float = 10.0) -> Any:
    """Poll ``condition`` until it returns something truthy, and return that; fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not (value := condition()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)
    return value


def claim_obj(
    name: str,
    results: list[tuple[str, str]],
    *,
    namespace: str = "default",
    config: list[dict[str, Any]] | None = None,
    pool: str = NODE,
    driver: str = DRIVER,
    share_ids: dict[str, str] | None = None,
) -> dict[str, Any]:
    """An allocated ResourceClaim; ``results`` are (request, device) pairs."""
    out = []
    for request, device in results:
        result: dict[str, Any] = {"request": request, "driver": driver, "pool": pool, "device": device}
        if share_ids and device in share_ids:
            result["shareID"] = share_ids[device]
        out.append(result)
    devices: dict[str, Any] = {"results": out}
    if config:
        devices["config"] = config
    return {
        "apiVersion": "resource.k8s.io/v1",
        "kind": "ResourceClaim",
        "metadata": {"name": name, "namespace": namespace, "uid": str(uuid.uuid4())},
        "spec": {"devices": {"requests": [{"name": r, "exactly": {"deviceClassName": "gpu"}} for r, _ in results]}},
        "status": {"allocation": {"devices": devices}},
    }


def ref(obj: dict[str, Any]) -> ClaimRef:
    meta = obj["metadata"]
    return ClaimRef(meta["namespace"], meta["uid"], meta["name"])


def opaque(
    kind: str, sharing: dict[str, Any], source: str = "FromClaim", requests: list[str] | None = None
) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "source": source,
        "opaque": {
            "driver": DRIVER,
            "parameters": {"apiVersion": "resource.gpupolicy.dev/v1alpha1", "kind": kind, "sharing": sharing},
        },
    }
    if requests:
        entry["requests"] = requests
    return entry


@dataclass
class Node:
    tmp: Path
    nvml: SimNvml
    kube: FakeKube
    runner: FakeRunner
    cdi: CdiRegistry
    checkpoint: Checkpoint
    preparer: LoopPreparer
    publish_for: PublishFor | None

    def inventory(self) -> Inventory:
        return build_inventory(self.nvml.gpus(), self.publish_for, driver=DRIVER)

    def add_claim(self, name: str, results: list[tuple[str, str]], **kwargs: Any) -> ClaimRef:
        return ref(self.kube.put_claim(claim_obj(name, results, **kwargs)))

    def cdi_files(self) -> list[str]:
        return self.cdi.claim_uids()

    def mig_instances(self) -> list[tuple[int, str, int]]:
        return sorted((g.minor, m.profile, m.start) for g in self.nvml.gpus() for m in g.mig_devices)


def plugin_errors(node: Node) -> dict[tuple[str, str], float]:
    """The node's ``gpupolicy_plugin_errors_total`` by (operation, code)."""
    samples = parse(node.preparer.metrics.render()).values
    return {
        (dict(labels)["operation"], dict(labels)["code"]): value
        for (name, labels), value in samples.items()
        if name == "gpupolicy_plugin_errors_total"
    }


def make_node(tmp: Path, spec: str = "2xA100-40GB:mig,2xH100-80GB", publish_for: PublishFor | None = None) -> Node:
    state = tmp / "state"
    state.mkdir(exist_ok=True)
    nvml = SimNvml(spec, state_file=state / "sim-nvml.json")
    kube = FakeKube()
    runner = FakeRunner(state / "sim-commands.json")
    cdi = CdiRegistry(tmp / "cdi", DRIVER)
    checkpoint = Checkpoint(state, "boot-1")
    node = Node(tmp, nvml, kube, runner, cdi, checkpoint, None, publish_for)  # type: ignore[arg-type]
    node.preparer = LoopPreparer(
        driver=DRIVER,
        pool=NODE,
        kube=kube,
        nvml=nvml,
        cdi=cdi,
        runner=runner,
        checkpoint=checkpoint,
        records={},
        state_dir=state,
        inventory=node.inventory,
    )
    return node


class PluginNode:
    """A whole plugin (``Plugin``, in this process) on a simulated node whose state survives restarts."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.kube = FakeKube()
        self.kube.put_node(NODE)
        self.state = tmp / "state"
        self.state.mkdir(exist_ok=True)

    def plugin(self, publish_for: Any = None) -> Plugin:
        options = Options(
            node=NODE, driver=DRIVER, plugin_dir=self.tmp / "p", registry_dir=self.tmp / "r",
            cdi_root=self.tmp / "cdi", state_dir=self.state, nvml="sim:" + SPEC,
        )  # fmt: skip
        nvml = SimNvml(SPEC, seed=NODE, state_file=self.state / "sim-nvml.json")
        runner = FakeRunner(self.state / "cmd.json")
        plugin = Plugin(options, kube=self.kube, nvml=nvml, runner=runner, publish_for=publish_for)
        plugin.start()
        return plugin

    def preparer(self, plugin: Plugin) -> LoopPreparer:
        assert plugin.preparer is not None
        return plugin.preparer
