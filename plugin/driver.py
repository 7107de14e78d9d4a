"""The plugin process: discovery, reconciliation, gRPC servers, publishing and health, wired together.

``Plugin.start`` order: NVML → checkpoint → inventory → reconcile → DRA + registration sockets →
publisher and health threads. Publishing and claim reads need the API server; everything else
works without it, so the plugin registers with kubelet even while the API server is down.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from plugin.cdi import CdiRegistry
from plugin.checkpoint import Checkpoint, read_boot_id
from plugin.discovery import Inventory, PublishFor, build_inventory
from plugin.health import HealthMonitor, HealthState
from plugin.kube import Kube, Obj, RealKube
from plugin.nvml.types import Gpu, Nvml
from plugin.prepare import Preparer
from plugin.publish import Publisher
from plugin.reconcile import ReconcileReport, reconcile
from plugin.server import PluginServer
from plugin.sharing import CommandRunner, FakeRunner, SubprocessRunner
from policy.builder import DEFAULT_DRIVER, NodeRef, build_slices
from policy.gpu import EXCLUSIVE, GpuInfo, Mode, Publish
from policy.k8s.dump import to_wire

log = logging.getLogger(__name__)
BOOT_ID_ENV = "GPUPOLICY_BOOT_ID"
DYNAMIC_MIG = Publish(mode=Mode.MIG, mig_dynamic=True, rule="default: MIG-enabled GPU without foreign instances")


@dataclass(frozen=True)
class Options:
    node: str
    driver: str = DEFAULT_DRIVER
    policy: Path | None = None
    plugin_dir: Path = Path("/var/lib/kubelet/plugins")
    registry_dir: Path = Path("/var/lib/kubelet/plugins_registry")
    cdi_root: Path = Path("/var/run/cdi")
    state_dir: Path = Path("/var/lib/gpupolicy")
    kubeconfig: Path | None = None
    nvml: str = "real"
    resync_s: float = 30.0


def open_nvml(spec: str, node: str, state_dir: Path | None) -> Nvml:
    """``real`` or ``sim:<spec>``; a simulated node keeps its state in ``state_dir/sim-nvml.json``."""
    if spec == "real":
        from plugin.nvml.real import RealNvml

        return RealNvml()
    if not spec.startswith("sim:"):
        raise ValueError(f"--nvml must be 'real' or 'sim:<spec>', not {spec!r}")
    from plugin.nvml.sim import SimNvml

    return SimNvml(spec[4:], seed=node, state_file=state_dir / "sim-nvml.json" if state_dir else None)


def default_publish_for(gpus: list[Gpu], owned: set[tuple[str, int]]) -> PublishFor:
    """Without a policy: full GPUs; a MIG-enabled GPU whose instances all belong to our claims is
    dynamic MIG, one with instances somebody else made keeps them as static MIG devices."""
    decisions: dict[str, Publish] = {}
    for gpu in gpus:
        foreign = any((gpu.uuid, m.start) not in owned for m in gpu.mig_devices)
        decisions[gpu.uuid] = DYNAMIC_MIG if gpu.mig_enabled and not foreign else EXCLUSIVE
    return lambda info, _view: decisions.get(info.uuid, EXCLUSIVE)


def load_policy_publish(path: Path) -> tuple[PublishFor, str]:
    from policy.policyfile.compile import load_policy

    compiled = load_policy(path.read_text(encoding="utf-8"), str(path))
    return compiled.publish_for, compiled.driver_name


class Plugin:
    def __init__(
        self,
        options: Options,
        *,
        kube: Kube | None = None,
        nvml: Nvml | None = None,
        runner: CommandRunner | None = None,
        publish_for: PublishFor | None = None,
    ) -> None:
        self.options = options
        options.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.nvml = nvml or open_nvml(options.nvml, options.node, options.state_dir)
        if runner is None:
            sim = options.nvml.startswith("sim:")
            runner = FakeRunner(options.state_dir / "sim-commands.json") if sim else SubprocessRunner()
        self.runner = runner
        self.kube: Kube = kube or RealKube(options.kubeconfig)
        self._publish_for = publish_for
        self.health = HealthState(options.driver, options.node)
        self.checkpoint = Checkpoint(options.state_dir, os.environ.get(BOOT_ID_ENV) or read_boot_id())
        self.cdi = CdiRegistry(options.cdi_root, options.driver)
        self.inventory = Inventory()
        self._inventory_lock = threading.Lock()
        self.preparer: Preparer | None = None
        self.server: PluginServer | None = None
        self.publisher: Publisher | None = None
        self.monitor: HealthMonitor | None = None
        self.report = ReconcileReport()

    def _refresh_inventory(self) -> Inventory:
        gpus = self.nvml.gpus()
        with self._inventory_lock:
            self.inventory = build_inventory(gpus, self._publish_for, self.health.taints(), self.options.driver)
            self.health.set_devices([(name, d.gpu_uuid) for name, d in self.inventory.devices.items()])
            return self.inventory

    def _current_inventory(self) -> Inventory:
        return self.inventory

    def build_slices(self, node: NodeRef, generation: int) -> list[Obj]:
        taints = self.health.taints()
        with self._inventory_lock:
            inventory = self.inventory
        gpus: list[GpuInfo] = [dataclasses.replace(g, taints=taints.get(g.uuid, ())) for g in inventory.gpus]
        slices = build_slices(
            node,
            gpus,
            publish_for=lambda g, _v: inventory.publish.get(g.uuid, EXCLUSIVE),
            driver=self.options.driver,
            generation=generation,
        )
        return [to_wire(s) for s in slices]

    def start(self) -> None:
        opts = self.options
        loaded = self.checkpoint.load()
        if loaded.corrupted:
            log.error("checkpoint was corrupted and moved to %s; rebuilding from NVML and the API server", loaded.corrupted)
        owned = {(op.gpu_uuid, op.start) for r in loaded.records.values() for op in r.mig if op.created}
        if self._publish_for is None:
            self._publish_for = (
                load_policy_publish(opts.policy)[0] if opts.policy else default_publish_for(self.nvml.gpus(), owned)
            )
        inventory = self._refresh_inventory()
        self.preparer = Preparer(
            driver=opts.driver,
            pool=opts.node,
            kube=self.kube,
            nvml=self.nvml,
            cdi=self.cdi,
            runner=self.runner,
            checkpoint=self.checkpoint,
            records=dict(loaded.records),
            state_dir=opts.state_dir,
            inventory=self._current_inventory,
        )
        self.report = reconcile(
            self.preparer, inventory, self.kube, rebuild=loaded.corrupted is not None, state_dir=opts.state_dir
        )
        self.server = PluginServer(
            driver=opts.driver,
            plugin_dir=opts.plugin_dir,
            registry_dir=opts.registry_dir,
            preparer=self.preparer,
            health=self.health,
        )
        self.server.start()
        self.publisher = Publisher(self.kube, opts.driver, opts.node, self.build_slices, resync_s=opts.resync_s)
        self.health.on_change(self.publisher.poke)
        self.publisher.start()
        self.monitor = HealthMonitor(self.nvml, self.health)
        self.monitor.start()

    def stop(self) -> None:
        if self.monitor:
            self.monitor.stop()
        if self.publisher:
            self.publisher.stop()
        if self.server:
            self.server.stop()
        self.nvml.shutdown()
