"""Start-up reconciliation of the checkpoint with NVML, CDI files and MPS folders.

- A checkpoint that was corrupted is rebuilt from the API server: claims allocated from this
  node's pool that still have a CDI spec file were prepared, and keep their MIG instances.
- ``PrepareStarted`` records (a prepare interrupted by a crash) are rolled back.
- MIG instances on dynamic-MIG GPUs that no record holds are destroyed.
- CDI spec files and MPS folders of claims without a record are removed (daemons stopped).

When the checkpoint had to be rebuilt but the API server is unreachable, nothing is destroyed:
without the checkpoint the plugin cannot tell a leak from a running workload's device.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from gpupolicy.plugin.kube import ApiError
from gpupolicy.plugin.kubelet import sharing_plan
from gpupolicy.plugin.kubelet.api import Kube
from gpupolicy.plugin.kubelet.checkpoint import ClaimRecord, ClaimState, MigOp, PreparedDevice, SharingOp
from gpupolicy.plugin.kubelet.discovery import Inventory
from gpupolicy.plugin.kubelet.nvml.types import NvmlError
from gpupolicy.plugin.kubelet.prepare import Preparer
from gpupolicy.plugin.kubelet.sharing import stop_mps
from gpupolicy.policy.k8s.ids import ClaimUID

log = logging.getLogger(__name__)


@dataclass
class ReconcileReport:
    rolled_back: list[str] = field(default_factory=list)
    destroyed_mig: list[str] = field(default_factory=list)
    removed_cdi: list[str] = field(default_factory=list)
    removed_mps: list[str] = field(default_factory=list)
    rebuilt: list[str] = field(default_factory=list)
    degraded: str = ""


def rebuild_records(preparer: Preparer, kube: Kube, inventory: Inventory, cdi_uids: set[str]) -> list[ClaimRecord]:
    """Records for claims of our pool that have a CDI file, from the API server's allocations."""
    gpus = {g.uuid: g for g in inventory.gpus}
    out = []
    for claim in kube.list_claims():
        meta = claim.get("metadata") or {}
        uid = str(meta.get("uid", ""))
        if uid not in cdi_uids:
            continue
        allocation = (claim.get("status") or {}).get("allocation") or {}
        results = [
            r
            for r in (allocation.get("devices") or {}).get("results") or []
            if r.get("driver") == preparer.driver and r.get("pool") == preparer.pool
        ]
        devices: list[PreparedDevice] = []
        mig: list[MigOp] = []
        keys: list[str] = []
        items: list[sharing_plan.Item] = []
        for r in results:
            device = inventory.devices.get(r["device"])
            if device is None:
                continue
            items.append(sharing_plan.Item(device, None, r, bool(r.get("adminAccess"))))
            keys.extend(device.exclusive_keys())
            if device.mig:
                inst = next((m for m in gpus[device.gpu_uuid].mig_instances if m.start == device.start), None)
                if inst is not None:
                    mig.append(
                        MigOp(
                            device.gpu_uuid, device.profile, device.start, device.dynamic, inst.uuid, inst.gi_id or -1
                        )
                    )
            cdi_id = preparer.cdi.device_id(uid, device.name)
            devices.append(PreparedDevice((r["request"],), preparer.pool, device.name, (cdi_id,), r.get("shareID")))
        # The policy's sharing (a claim's own config is not re-read): shared GPUs' settings and daemons
        # stay held, a claim's own MPS daemon is kept when its folder is there.
        try:
            planned = sharing_plan.plan(preparer.state_dir / "mps" / uid, items)
        except sharing_plan.SharingError:
            planned = ()
        sharing = tuple(op for op in planned if op.shared or op.strategy == "TimeSlicing" or Path(op.mps_dir).exists())
        own_mps = preparer.state_dir / "mps" / uid
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
    preparer: Preparer, inventory: Inventory, kube: Kube, *, rebuild: bool, state_dir: Path
) -> ReconcileReport:
    report = ReconcileReport()
    records = preparer.records
    cdi = preparer.cdi
    if rebuild:
        try:
            for record in rebuild_records(preparer, kube, inventory, set(cdi.claim_uids())):
                records[record.uid] = record
                report.rebuilt.append(record.uid)
        except ApiError as exc:
            report.degraded = f"checkpoint lost and the API server is unreachable ({exc}); not cleaning up"
            log.error("%s", report.degraded)
            return report
    for record in [r for r in records.values() if r.state is ClaimState.PREPARE_STARTED]:
        log.info("rolling back interrupted prepare of claim %s/%s", record.namespace, record.name)
        try:
            preparer.teardown(record)
        except (NvmlError, OSError) as exc:
            log.error("rolling back %s failed: %s", record.uid, exc)
            continue
        del records[record.uid]
        report.rolled_back.append(record.uid)
    owned = {(op.gpu_uuid, op.start) for r in records.values() for op in r.mig}
    nvml = preparer.nvml
    for gpu in nvml.gpus():
        if gpu.uuid not in inventory.dynamic_gpus:
            continue
        for inst in gpu.mig_devices:
            if (gpu.uuid, inst.start) not in owned:
                log.info(
                    "destroying MIG instance %s (%s at %d) that no claim holds", inst.uuid, inst.profile, inst.start
                )
                nvml.destroy_mig(gpu.uuid, inst.gi_id)
                report.destroyed_mig.append(inst.uuid)
    for uid in cdi.claim_uids():
        if uid not in records:
            cdi.remove(uid)
            report.removed_cdi.append(uid)
    mps_root = state_dir / "mps"
    held = {op.mps_dir for r in records.values() for op in r.sharing if op.mps_dir}
    if mps_root.is_dir():
        for folder in sorted(mps_root.iterdir()):
            if str(folder) not in held:
                stop_mps(preparer.runner, SharingOp("MPS", (), mps_dir=str(folder)))
                shutil.rmtree(folder, ignore_errors=True)
                report.removed_mps.append(folder.name)
    preparer.persist()
    return report
