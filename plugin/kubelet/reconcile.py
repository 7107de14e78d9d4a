"""Start-up reconciliation of the checkpoint with NVML, CDI files and MPS folders, and the rebuild of lost
records from the API server.

With records the plugin can trust (the checkpoint was intact, or has been rebuilt):

- ``PrepareStarted`` records (a prepare interrupted by a crash) are rolled back, and ``UnprepareStarted``
  records (an interrupted unprepare) torn down to the end; MIG instances only by their recorded IDs.
- MIG instances on dynamic-MIG GPUs that no record holds are destroyed.
- CDI spec files and MPS folders of claims without a record are removed (daemons stopped).

When the records must be rebuilt (the checkpoint was damaged, or is missing while CDI specs or MIG instances
of this boot exist, or says so itself), they are rebuilt first from the API server: claims allocated from
this node's pool that still have a CDI spec file were prepared, and keep their MIG instances, sharing and
spec. If the API server cannot be read, **nothing** is cleaned up: without the records the plugin cannot tell
a leak from a running workload's device. The plugin then runs degraded (``Preparer.rebuilding``: every
prepare and unprepare fails with ``checkpoint_rebuilding``), the checkpoint says so (``needsRebuild``, so a
restart keeps waiting too), and :class:`RebuildRetry` tries again with backoff until the rebuild succeeds.
"""

from __future__ import annotations

import logging
import shutil
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gpupolicy.plugin.kube import ApiError
from gpupolicy.plugin.kubelet import sharing_plan
from gpupolicy.plugin.kubelet.api import Kube
from gpupolicy.plugin.kubelet.checkpoint import ClaimRecord, ClaimState, MigOp, PreparedDevice, SharingOp
from gpupolicy.plugin.kubelet.checkpoint_schema import uid_problem
from gpupolicy.plugin.kubelet.discovery import Inventory
from gpupolicy.plugin.kubelet.nvml.types import Gpu
from gpupolicy.plugin.kubelet.prepare import Preparer
from gpupolicy.plugin.kubelet.sharing import stop_mps
from gpupolicy.policy.k8s.ids import ClaimUID

log = logging.getLogger(__name__)
BACKOFF_S = (1.0, 30.0)
"""The rebuild's retry delays: the first, doubled after each failure up to the second."""


@dataclass
class ReconcileReport:
    rolled_back: list[str] = field(default_factory=list)
    """``PrepareStarted`` claims rolled back."""
    finished: list[str] = field(default_factory=list)
    """``UnprepareStarted`` claims whose teardown was finished."""
    destroyed_mig: list[str] = field(default_factory=list)
    removed_cdi: list[str] = field(default_factory=list)
    removed_mps: list[str] = field(default_factory=list)
    rebuilt: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    """Steps that failed (logged; tried again at the next start)."""
    degraded: str = ""
    """Why nothing was cleaned up: the records must be rebuilt and the API server could not be read."""
    unwritable: str = ""
    """The checkpoint could not be written (the records in memory are right; the next write tries again)."""


def lost_checkpoint_evidence(preparer: Preparer, inventory: Inventory) -> str:
    """Why a missing checkpoint must have been lost rather than never written: this boot's CDI specs of this
    driver (``/var/run/cdi`` is tmpfs) or MIG instances on dynamic-MIG GPUs exist. "" when neither does."""
    specs = preparer.cdi.claim_uids()
    instances = [m.uuid for g in inventory.gpus if g.uuid in inventory.dynamic_gpus for m in g.mig_instances]
    if not specs and not instances:
        return ""
    return (
        f"checkpoint {preparer.checkpoint_path} is missing, but {len(specs)} CDI specs and {len(instances)} "
        "dynamic MIG instances of this boot exist"
    )


def rebuild_records(preparer: Preparer, kube: Kube, gpus: list[Gpu], cdi_uids: set[str]) -> list[ClaimRecord]:
    """Records for claims of our pool that have a CDI file, from the API server's allocations and the MIG
    instances NVML has now (``gpus``): each record names its instances' IDs, as a prepare would have."""
    instances = {(g.uuid, m.start): m for g in gpus for m in g.mig_devices}
    inventory = preparer.inventory()
    out = []
    for claim in kube.list_claims():
        meta = claim.get("metadata") or {}
        uid = str(meta.get("uid", ""))
        if uid not in cdi_uids or uid_problem(uid):
            continue
        allocation = (claim.get("status") or {}).get("allocation") or {}
        results = [
            r
            for r in (allocation.get("devices") or {}).get("results") or []
            if isinstance(r, dict) and r.get("driver") == preparer.driver and r.get("pool") == preparer.pool
        ]
        devices: list[PreparedDevice] = []
        mig: list[MigOp] = []
        keys: list[str] = []
        items: list[sharing_plan.Item] = []
        for r in results:
            device = inventory.devices.get(str(r.get("device")))
            if device is None:
                continue
            admin = bool(r.get("adminAccess"))
            items.append(sharing_plan.Item(device, None, r, admin))
            if not admin:
                keys.extend(device.exclusive_keys())
            if device.mig:
                inst = instances.get((device.gpu_uuid, device.start))
                if inst is not None:
                    created = device.dynamic and not admin
                    mig.append(
                        MigOp(device.gpu_uuid, device.profile, device.start, created, inst.uuid, inst.gi_id, inst.ci_id)
                    )
            cdi_id = preparer.cdi.device_id(uid, device.name)
            request = str(r.get("request", ""))
            devices.append(PreparedDevice((request,), preparer.pool, device.name, (cdi_id,), r.get("shareID")))
        # The policy's sharing (a claim's own config is not re-read): shared GPUs' settings and daemons
        # stay held, a claim's own MPS daemon is kept when its folder is there.
        own_mps = preparer.state_dir / "mps" / uid
        try:
            planned = sharing_plan.plan(own_mps, items)
        except sharing_plan.SharingError:
            planned = ()
        sharing = tuple(op for op in planned if op.shared or op.strategy == "TimeSlicing" or Path(op.mps_dir).exists())
        if own_mps.exists() and not any(op.mps_dir == str(own_mps) for op in sharing):
            sharing += (SharingOp("MPS", (), mps_dir=str(own_mps)),)
        out.append(
            ClaimRecord(
                uid=ClaimUID(uid),
                namespace=str(meta.get("namespace", "")),
                name=str(meta.get("name", "")),
                state=ClaimState.PREPARE_COMPLETED,
                devices=tuple(devices),
                mig=tuple(mig),
                sharing=sharing,
                cdi_file=str(preparer.cdi.spec_path(uid)),
                exclusive=tuple(keys),
            )
        )
    return out


def reconcile(
    preparer: Preparer, inventory: Inventory, kube: Kube, *, rebuild: str, state_dir: Path, must_write: bool = False
) -> ReconcileReport:
    """Bring the records, NVML, the CDI specs and the MPS folders into agreement (see the module's docstring).

    ``rebuild``: why the records must first be rebuilt from the API server ("" when they can be trusted).
    The checkpoint is written only when something changed (or ``must_write``: the file holds another boot's
    records); a write that fails is reported in ``unwritable``, not raised."""
    report = ReconcileReport()
    changed = must_write
    if rebuild:
        try:
            rebuilt = rebuild_records(preparer, kube, preparer.nvml.gpus(), set(preparer.cdi.claim_uids()))
        except ApiError as exc:
            report.degraded = (
                f"{rebuild}; the API server cannot be read to rebuild the records ({exc}): not cleaning up anything, "
                "and no claim is prepared or unprepared until a rebuild succeeds (retried with backoff)"
            )
            log.error("%s", report.degraded)
            if preparer.set_rebuilding(rebuild):
                _write(preparer, report)  # a restart must wait for the rebuild too
            return report
        preparer.install(rebuilt)
        report.rebuilt = sorted(r.uid for r in rebuilt)
        log.warning("rebuilt %d claim records from the API server (%s)", len(rebuilt), rebuild)
        changed = True
    changed |= _finish_interrupted(preparer, report)
    _sweep_orphans(preparer, inventory, state_dir, report)
    changed |= preparer.set_rebuilding("")
    if changed:
        _write(preparer, report)
    return report


def _write(preparer: Preparer, report: ReconcileReport) -> None:
    try:
        preparer.persist()
    except OSError as exc:
        report.unwritable = f"cannot write the checkpoint {preparer.checkpoint_path}: {exc}"
        log.error("%s; the plugin goes on with the records in memory", report.unwritable)


def _finish_interrupted(preparer: Preparer, report: ReconcileReport) -> bool:
    """Roll back ``PrepareStarted`` claims and finish the teardown of ``UnprepareStarted`` ones."""
    changed = False
    for record in [r for r in preparer.records.values() if r.state is not ClaimState.PREPARE_COMPLETED]:
        started = record.state is ClaimState.PREPARE_STARTED
        what = "rolling back the interrupted prepare" if started else "finishing the interrupted unprepare"
        log.info("%s of claim %s/%s (%s)", what, record.namespace, record.name, record.uid)
        try:
            preparer.teardown(record)
        except Exception as exc:  # never a crash loop: kept, tried again by kubelet's call or the next start
            log.error("%s of %s failed: %s", what, record.uid, exc)
            report.failed.append(f"{what} of {record.uid}: {exc}")
            continue
        preparer.forget(record.uid)
        (report.rolled_back if started else report.finished).append(record.uid)
        changed = True
    return changed


def _sweep_orphans(preparer: Preparer, inventory: Inventory, state_dir: Path, report: ReconcileReport) -> None:
    """Remove what no record holds: MIG instances on dynamic-MIG GPUs, CDI specs, MPS folders and daemons."""
    records = preparer.records
    owned = {(op.gpu_uuid, op.start) for r in records.values() for op in r.mig}
    nvml = preparer.nvml
    gpus: list[Gpu] = []
    _attempt(report, "listing the GPUs", lambda: gpus.extend(nvml.gpus()))
    for gpu in gpus:
        if gpu.uuid not in inventory.dynamic_gpus:
            continue
        for inst in gpu.mig_devices:
            if (gpu.uuid, inst.start) not in owned:
                log.info(
                    "destroying MIG instance %s (%s at %d) that no claim holds", inst.uuid, inst.profile, inst.start
                )
                if _attempt(report, f"destroying MIG instance {inst.uuid}", nvml.destroy_mig, gpu.uuid, inst.gi_id):
                    report.destroyed_mig.append(inst.uuid)
    cdi = preparer.cdi
    for uid in cdi.claim_uids():
        if uid not in records and _attempt(report, f"removing the CDI spec of {uid}", cdi.remove, uid):
            report.removed_cdi.append(uid)
    mps_root = state_dir / "mps"
    held = {op.mps_dir for r in records.values() for op in r.sharing if op.mps_dir}
    try:
        folders = sorted(mps_root.iterdir()) if mps_root.is_dir() else []
    except OSError as exc:
        report.failed.append(f"listing {mps_root}: {exc}")
        folders = []
    for folder in folders:
        if str(folder) not in held:
            op = SharingOp("MPS", (), mps_dir=str(folder))
            if _attempt(report, f"stopping the MPS daemon of {folder}", stop_mps, preparer.runner, op):
                shutil.rmtree(folder, ignore_errors=True)
                report.removed_mps.append(folder.name)


def _attempt(report: ReconcileReport, what: str, step: Callable[..., Any], *args: Any) -> bool:
    """Run one clean-up step; a failure is logged and reported, never raised (the next start tries again)."""
    try:
        step(*args)
    except Exception as exc:
        log.error("%s failed: %s", what, exc)
        report.failed.append(f"{what}: {exc}")
        return False
    return True


class RebuildRetry:
    """Calls ``attempt`` on a thread until it returns True: after ``BACKOFF_S[0]`` seconds, then twice as long
    after each failure, at most ``BACKOFF_S[1]``. ``poke`` (a claim was refused meanwhile) makes the next attempt
    come sooner, but never sooner than ``BACKOFF_S[0]`` after the last one."""

    def __init__(self, attempt: Callable[[], bool], backoff_s: tuple[float, float] | None = None) -> None:
        self._attempt = attempt
        self._first, self._most = backoff_s or BACKOFF_S
        self._wake = threading.Event()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="checkpoint-rebuild", daemon=True)
        self.attempts = 0

    def start(self) -> RebuildRetry:
        self._thread.start()
        return self

    def poke(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stopped.set()
        self._wake.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(10)

    @property
    def done(self) -> bool:
        return not self._thread.is_alive()

    def _run(self) -> None:
        delay = self._first
        while True:
            self._stopped.wait(self._first)  # the shortest gap between two attempts
            self._wake.wait(max(0.0, delay - self._first))
            self._wake.clear()
            if self._stopped.is_set():
                return
            self.attempts += 1
            try:
                if self._attempt():
                    return
            except Exception:  # a bug must not end the retries silently
                log.exception("rebuilding the checkpoint failed unexpectedly")
            delay = min(delay * 2, self._most)
