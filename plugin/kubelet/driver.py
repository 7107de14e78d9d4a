"""The plugin process: discovery, reconciliation, gRPC servers, publishing and health, wired together.

``Plugin.start`` order: stale temporary files swept → NVML → checkpoint → inventory → reconcile → DRA +
registration sockets → publisher and health threads (and, while the records must be rebuilt from the API
server, the rebuild's retries). Publishing and claim reads need the API server; everything else works
without it, so the plugin registers with kubelet even while the API server is down. A checkpoint written by a
newer build (a version this one does not read) stops ``start`` before anything is changed:
``CheckpointVersionUnsupported``, also sent as a Warning Event on the Node. Nothing else stops it: a damaged,
lost or unwritable checkpoint, a read-only or full state folder start the plugin degraded (Events on the
Node say how), never in a crash loop.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from gpupolicy.plugin.fsutil import read_source, sweep_stale_tmp, write_atomic
from gpupolicy.plugin.kube import ApiError, Obj
from gpupolicy.plugin.kubelet.api import Kube, NodeApi, node_event
from gpupolicy.plugin.kubelet.cdi import CdiRegistry
from gpupolicy.plugin.kubelet.checkpoint import Checkpoint, read_boot_id
from gpupolicy.plugin.kubelet.checkpoint_schema import CheckpointVersionUnsupported
from gpupolicy.plugin.kubelet.discovery import Inventory, build_inventory
from gpupolicy.plugin.kubelet.health import HealthMonitor, HealthState
from gpupolicy.plugin.kubelet.metrics import PluginMetrics
from gpupolicy.plugin.kubelet.nvml.types import Gpu, Nvml
from gpupolicy.plugin.kubelet.prepare_loop import LoopPreparer
from gpupolicy.plugin.kubelet.publish import Publisher
from gpupolicy.plugin.kubelet.reconcile import RebuildRetry, ReconcileReport, lost_checkpoint_evidence, reconcile
from gpupolicy.plugin.kubelet.server import PluginServer
from gpupolicy.plugin.kubelet.sharing import CommandRunner, FakeRunner, SubprocessRunner
from gpupolicy.policy.builder import DEFAULT_DRIVER, NodeRef, PublishFor, build_slices
from gpupolicy.policy.gpu import EXCLUSIVE, GpuInfo, Mode, Publish
from gpupolicy.policy.k8s.dump import to_wire

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
        from gpupolicy.plugin.kubelet.nvml.real import RealNvml

        return RealNvml()
    if not spec.startswith("sim:"):
        raise ValueError(f"--nvml must be 'real' or 'sim:<spec>', not {spec!r}")
    from gpupolicy.plugin.kubelet.nvml.sim import SimNvml

    return SimNvml(spec[4:], seed=node, state_file=state_dir / "sim-nvml.json" if state_dir else None)


def default_publish_for(
    gpus: list[Gpu], modes_file: Path | None = None, problems: list[str] | None = None
) -> PublishFor:
    """Without a policy: full GPUs, and MIG-enabled GPUs as dynamic MIG, except one that already had
    MIG instances the first time the plugin saw it (somebody else's layout), kept as static MIG.

    The decision is made once per GPU and remembered in ``modes_file``, so instances the plugin
    creates later (or leaks in a crash) never turn a dynamic GPU into a static one. The file is written
    only when a GPU is new to it; a file that cannot be read or written is logged (and added to
    ``problems``), and the decisions hold for this run."""
    known: dict[str, str] = {}
    if modes_file is not None and modes_file.exists():
        try:
            loaded = json.loads(modes_file.read_text(encoding="utf-8"))
            if not isinstance(loaded, dict) or not all(isinstance(v, str) for v in loaded.values()):
                raise ValueError("not an object of strings")
            known = dict(loaded)
        except (OSError, ValueError, RecursionError) as exc:
            _problem(problems, f"cannot read {modes_file} ({exc}); MIG modes are decided again")
    before = dict(known)
    for gpu in gpus:
        if gpu.uuid not in known:
            known[gpu.uuid] = "dynamic" if gpu.mig_enabled and not gpu.mig_devices else "static"
    if modes_file is not None and known != before:
        try:
            write_atomic(modes_file, json.dumps(known, sort_keys=True, indent=1).encode())
        except OSError as exc:
            _problem(problems, f"cannot write {modes_file} ({exc}); MIG modes hold for this run only")
    decisions = {uuid: DYNAMIC_MIG if mode == "dynamic" else EXCLUSIVE for uuid, mode in known.items()}
    mig_enabled = {gpu.uuid for gpu in gpus if gpu.mig_enabled}
    return lambda info, _view: decisions.get(info.uuid, EXCLUSIVE) if info.uuid in mig_enabled else EXCLUSIVE


def _problem(problems: list[str] | None, message: str) -> None:
    log.error("%s", message)
    if problems is not None:
        problems.append(message)


def load_policy_publish(path: Path) -> tuple[PublishFor, str]:
    from gpupolicy.policy.policyfile.compile import load_policy

    compiled = load_policy(*read_source(path))
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
        self._state_problems: list[str] = []
        try:
            options.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            _problem(self._state_problems, f"cannot create the state folder {options.state_dir}: {exc}")
        self.nvml = nvml or open_nvml(options.nvml, options.node, options.state_dir)
        if runner is None:
            sim = options.nvml.startswith("sim:")
            runner = FakeRunner(options.state_dir / "sim-commands.json") if sim else SubprocessRunner()
        self.runner = runner
        self.kube: Kube = kube or NodeApi(options.kubeconfig)
        self._publish_for = publish_for
        self.health = HealthState(options.driver, options.node)
        self.checkpoint = Checkpoint(options.state_dir, os.environ.get(BOOT_ID_ENV) or read_boot_id())
        self.cdi = CdiRegistry(options.cdi_root, options.driver)
        self.inventory = Inventory()
        self._inventory_lock = threading.Lock()
        self.preparer: LoopPreparer | None = None
        self.server: PluginServer | None = None
        self.publisher: Publisher | None = None
        self.monitor: HealthMonitor | None = None
        self.report = ReconcileReport()
        self.rebuild_retry: RebuildRetry | None = None
        self.metrics = PluginMetrics()

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

    def event(self, reason: str, message: str, *, wait_s: float = 0.0, warning: bool = True) -> None:
        """A Warning (or Normal) Event on the Node, sent in the background (the API server may be down);
        ``wait_s``: how long to wait for it to be sent (when the process is about to exit)."""

        def send() -> None:
            try:
                uid = str(self.kube.get_node(self.options.node)["metadata"].get("uid") or "")
                self.kube.create_event(node_event(self.options.node, uid, reason, message, warning))
            except ApiError as exc:
                log.warning("could not record event %s: %s", reason, exc)

        sender = threading.Thread(target=send, name="event", daemon=True)
        sender.start()
        if wait_s:
            sender.join(wait_s)

    def start(self) -> None:
        opts = self.options
        self._sweep_stale_tmp()
        try:
            loaded = self.checkpoint.load()
        except CheckpointVersionUnsupported as exc:  # a newer build's state: keep it, and everything it describes
            self.event("CheckpointVersionUnsupported", str(exc), wait_s=5.0)
            raise
        if self._publish_for is None:
            modes = opts.state_dir / "gpu-modes.json"
            gpus = self.nvml.gpus()
            if opts.policy:
                self._publish_for = load_policy_publish(opts.policy)[0]
            else:
                self._publish_for = default_publish_for(gpus, modes, self._state_problems)
        inventory = self._refresh_inventory()
        self.preparer = LoopPreparer(
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
            metrics=self.metrics,
        )
        rebuild, reason = loaded.rebuild, "CheckpointCorrupted" if loaded.damaged else "CheckpointRebuildPending"
        if loaded.missing and (evidence := lost_checkpoint_evidence(self.preparer, inventory)):
            rebuild, reason = evidence, "CheckpointLost"
        self.report = reconcile(
            self.preparer,
            inventory,
            self.kube,
            rebuild=rebuild,
            state_dir=opts.state_dir,
            must_write=loaded.boot_changed,
        )
        if rebuild:
            self._rebuild_event(reason, rebuild, self.report)
        if self.report.unwritable:
            self._state_problems.append(self.report.unwritable)
        if self._state_problems:
            message = "; ".join(self._state_problems)
            self.event("StateUnwritable", f"{message}; the plugin goes on, claims that need a write fail until then")
        if self.preparer.rebuilding:
            self.rebuild_retry = RebuildRetry(self._retry_rebuild)
            self.preparer.on_rebuild_wanted = self.rebuild_retry.poke
            self.rebuild_retry.start()
        self.server = PluginServer(
            driver=opts.driver,
            plugin_dir=opts.plugin_dir,
            registry_dir=opts.registry_dir,
            preparer=self.preparer,
            health=self.health,
            on_rejected=lambda error: self.event("RegistrationFailed", f"kubelet rejected the plugin: {error}"),
        )
        self.server.start()
        self.publisher = Publisher(
            self.kube, opts.driver, opts.node, self.build_slices, resync_s=opts.resync_s, metrics=self.metrics
        )
        self.health.on_change(self.publisher.poke)
        self.publisher.start()
        self.monitor = HealthMonitor(self.nvml, self.health)
        self.monitor.start()

    def _rebuild_event(self, reason: str, why: str, report: ReconcileReport) -> None:
        if report.degraded:
            self.event(reason, report.degraded)
            return
        done = f"{why}; rebuilt {len(report.rebuilt)} claim records from the API server, then cleaned up"
        if reason == "CheckpointRebuildPending":  # the rebuild a previous run could not do
            self.event("CheckpointRebuilt", done, warning=False)
        else:
            self.event(reason, done)

    def _retry_rebuild(self) -> bool:
        """One more try at the rebuild ``start`` could not do (``RebuildRetry``): True once it succeeded."""
        assert self.preparer is not None
        why = self.preparer.rebuilding
        if not why:
            return True
        opts = self.options
        report = reconcile(self.preparer, self._current_inventory(), self.kube, rebuild=why, state_dir=opts.state_dir)
        if report.degraded:
            log.warning("the checkpoint's records are still not rebuilt: %s", report.degraded)
            return False
        self.report = report
        self._rebuild_event("CheckpointRebuildPending", why, report)
        if report.unwritable:
            self.event("StateUnwritable", report.unwritable)
        return True

    def _sweep_stale_tmp(self) -> None:
        """Temporary files of writes a kill interrupted: the state folder's, and this driver's CDI specs'."""
        prefix = f"{self.cdi.vendor}-"
        removed = sweep_stale_tmp(self.options.state_dir)
        removed += sweep_stale_tmp(self.options.cdi_root, lambda target: target.startswith(prefix))
        if removed:
            log.info("removed %d temporary files of interrupted writes", len(removed), extra={"files": removed})

    def stop(self) -> None:
        if self.rebuild_retry:
            self.rebuild_retry.stop()
        if self.monitor:
            self.monitor.stop()
        if self.publisher:
            self.publisher.stop()
        if self.server:
            self.server.stop()
        self.nvml.shutdown()
