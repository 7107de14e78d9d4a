"""NodePrepareResources / NodeUnprepareResources for one node, idempotent and crash-safe.

Per claim: fetch the ResourceClaim, check its UID and that its allocation names this driver and
this node's pool; record ``PrepareStarted`` with everything it is about to do; create dynamic MIG
instances, set up sharing, write the CDI spec; record ``PrepareCompleted``. A crash anywhere
leaves a ``PrepareStarted`` record that the next attempt (or start-up reconciliation) rolls back.
Unprepare records ``UnprepareStarted`` before it tears anything down (a claim with only a CDI spec:
drops its record first, the spec is then an orphan start-up removes), undoes exactly what the record
says, tolerating what is already gone, and drops the record. A claim whose teardown has begun is never
answered as prepared again: a prepare finishes the teardown and prepares afresh. MIG instances are
destroyed only by the instance ID and UUID their record names, never by placement.

While the records are being rebuilt from the API server (``rebuilding``: the checkpoint was lost or
damaged), every prepare and unprepare fails with ``checkpoint_rebuilding`` and kubelet retries: without the
records the plugin cannot tell a claim's live devices from another's.

Two ways in: ``prepare``/``unprepare`` here (threads: start-up and tests) and ``prepare_async``/
``unprepare_async`` of :class:`gpupolicy.plugin.kubelet.prepare_loop.LoopPreparer` (the gRPC server's event loop).
Each way serializes the calls for one claim with its own kind of lock, so one process uses one way at a time (the
server starts after start-up's reconciliation).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from gpupolicy.plugin.kube import ApiError
from gpupolicy.plugin.kubelet import faults, paths, sharing_plan
from gpupolicy.plugin.kubelet.api import Kube
from gpupolicy.plugin.kubelet.cdi import MPS_PIPE_IN_CONTAINER, CdiDevice, CdiRegistry, mig_cap_minor
from gpupolicy.plugin.kubelet.checkpoint import (
    Checkpoint,
    ClaimRecord,
    ClaimState,
    GroupCommit,
    MigOp,
    PreparedDevice,
    SharingOp,
)
from gpupolicy.plugin.kubelet.claims import (
    ClaimError,
    ClaimRef,
    PrepareResult,
    check_ref,
    prepare_failure,
    unprepare_failure,
)
from gpupolicy.plugin.kubelet.config import ConfigError, DeviceConfig, config_for, parse_configs
from gpupolicy.plugin.kubelet.discovery import Inventory, NodeDevice
from gpupolicy.plugin.kubelet.metrics import ErrorCode, PluginMetrics
from gpupolicy.plugin.kubelet.nvml.types import Nvml, NvmlError
from gpupolicy.plugin.kubelet.sharing import (
    CommandError,
    CommandRunner,
    reset_timeslice,
    set_timeslice,
    start_mps,
    start_shared_mps,
    stop_mps,
)
from gpupolicy.plugin.kubelet.steps import Steps
from gpupolicy.plugin.metrics import new_registry
from gpupolicy.policy.k8s.ids import ClaimUID

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Planned:
    result: dict[str, Any]
    device: NodeDevice
    config: DeviceConfig | None

    @property
    def admin(self) -> bool:
        """adminAccess: the device may be in use by others; it is exposed, never changed or reserved."""
        return bool(self.result.get("adminAccess"))


class Preparer:
    def __init__(
        self,
        *,
        driver: str,
        pool: str,
        kube: Kube,
        nvml: Nvml,
        cdi: CdiRegistry,
        runner: CommandRunner,
        checkpoint: Checkpoint,
        records: dict[ClaimUID, ClaimRecord],
        state_dir: Path,
        inventory: Callable[[], Inventory],
        metrics: PluginMetrics | None = None,
    ) -> None:
        self.driver, self.pool = driver, pool
        self.kube, self.nvml, self.cdi, self.runner = kube, nvml, cdi, runner
        self._checkpoint = checkpoint
        self.records = records
        self.state_dir = state_dir
        self._mps_root = state_dir / "mps"
        self._inventory = inventory
        self._lock = threading.Lock()
        self._claim_locks: dict[str, threading.Lock] = {}
        self._releasing: set[str] = set()
        """Claims whose teardown has begun: they no longer hold a shared GPU's setting or daemon."""
        self._share_lock = threading.Lock()
        self.rebuilding = ""
        """Why the records are incomplete (being rebuilt from the API server); "" when they are whole."""
        self.on_rebuild_wanted: Callable[[], None] = lambda: None
        """Called when a claim is refused while ``rebuilding``: the rebuild should be tried again now."""
        self._commit = GroupCommit(self._snapshot, checkpoint)
        self.metrics = metrics if metrics is not None else PluginMetrics(new_registry(process=False))
        self.metrics.prepared_claims.set_function(lambda: len(self.records))

    # --- persistence ------------------------------------------------------------------------

    def persist(self) -> None:
        """Return once the records as they are now are on disk (concurrent callers share writes)."""
        self._commit.commit()

    def _snapshot(self) -> dict[ClaimUID, ClaimRecord]:
        with self._lock:
            return dict(self.records)

    def _set(self, record: ClaimRecord) -> None:
        with self._lock:
            self.records[record.uid] = record

    def _drop(self, uid: ClaimUID) -> None:
        with self._lock:
            self.records.pop(uid, None)
            self._releasing.discard(uid)

    @property
    def checkpoint_path(self) -> Path:
        return self._checkpoint.path

    def inventory(self) -> Inventory:
        """The node's devices as published now."""
        return self._inventory()

    def set_rebuilding(self, reason: str) -> bool:
        """Mark the records incomplete (``reason``: claims are refused until it is cleared) or whole (""), here
        and in the checkpoint's next write. Returns whether the checkpoint must be written to say so."""
        self.rebuilding = reason
        changed = self._checkpoint.needs_rebuild != reason
        self._checkpoint.needs_rebuild = reason
        return changed

    def install(self, records: list[ClaimRecord]) -> None:
        """Add rebuilt records (the caller persists them)."""
        with self._lock:
            for record in records:
                self.records[record.uid] = record

    def forget(self, uid: ClaimUID) -> None:
        """Drop a record whose claim was torn down (the caller persists the removal)."""
        self._drop(uid)

    def _claim_lock(self, uid: str) -> threading.Lock:
        with self._lock:
            return self._claim_locks.setdefault(uid, threading.Lock())

    def _refuse_while_rebuilding(self) -> None:
        reason = self.rebuilding
        if reason:
            self.on_rebuild_wanted()
            raise ClaimError(
                f"the plugin's records are being rebuilt from the API server ({reason}); nothing is prepared or "
                "unprepared until then (will be retried)",
                ErrorCode.CHECKPOINT_REBUILDING,
            )

    # --- prepare ----------------------------------------------------------------------------

    def prepare(self, claims: list[ClaimRef]) -> dict[str, PrepareResult]:
        """Prepare each claim independently; several claims of one call are fetched and prepared in parallel."""
        if len(claims) <= 1:
            return {claim.uid: self._prepare_one(claim) for claim in claims}
        with ThreadPoolExecutor(max_workers=min(8, len(claims)), thread_name_prefix="prepare") as pool:
            results = list(pool.map(self._prepare_one, claims))
        return {claim.uid: result for claim, result in zip(claims, results)}

    def _prepare_one(self, claim: ClaimRef) -> PrepareResult:
        try:
            check_ref(claim)
            with self._claim_lock(claim.uid):
                return PrepareResult(self._prepare_locked(claim))
        except Exception as exc:  # never fail the whole batch
            return prepare_failure(claim, exc, self.metrics)

    def _prepare_locked(self, claim: ClaimRef) -> tuple[PreparedDevice, ...]:
        self._refuse_while_rebuilding()
        record = self.records.get(ClaimUID(claim.uid))
        if record is not None and record.state is ClaimState.PREPARE_COMPLETED:
            return record.devices
        return self._prepare_fetched(claim, record, self._fetch(claim))

    def _prepare_fetched(
        self, claim: ClaimRef, record: ClaimRecord | None, obj: dict[str, Any]
    ) -> tuple[PreparedDevice, ...]:
        """Prepare ``claim`` as ``obj`` (its ResourceClaim) allocates it, first rolling back ``record`` (an
        interrupted earlier attempt). Blocks: MIG creation, sharing daemons, checkpoint writes."""
        uid = ClaimUID(claim.uid)
        allocation = self._check(claim, obj)
        if record is not None:
            if record.state is ClaimState.UNPREPARE_STARTED:
                log.info("finishing the interrupted unprepare of %s before preparing it again", claim)
            else:
                log.info("rolling back the interrupted prepare of %s", claim)
            self.teardown(record)
            self._drop(uid)
        planned, inventory, sharing = self._plan(claim, *allocation)
        started = self._start(claim, planned, inventory, sharing)
        faults.crash_point("prepare-started")
        try:
            done = self._apply(started, planned)
        except (NvmlError, CommandError, OSError) as exc:
            self._discard(uid, started)
            try:
                self.persist()
            except OSError as write_error:  # the disk keeps PrepareStarted: rolled back again, harmlessly
                log.warning("cannot record the rollback of %s: %s", claim, write_error)
            raise ClaimError(f"preparing devices failed (rolled back): {exc}", ErrorCode.SETUP_FAILED) from None
        self._set(done)
        try:
            self.persist()
        except OSError as exc:
            raise self._not_recorded(done, exc) from None
        faults.crash_point("prepare-completed")
        return done.devices

    def _discard(self, uid: ClaimUID, started: ClaimRecord) -> None:
        """Undo a prepare that failed part-way (the caller persists the removal)."""
        self.teardown(self.records.get(uid, started))
        self._drop(uid)

    def _not_recorded(self, done: ClaimRecord, exc: OSError) -> ClaimError:
        # Not durable, so not prepared: kept as started, the retry rolls it back and starts over
        # instead of answering from a record that a crash would lose.
        self._set(replace(done, state=ClaimState.PREPARE_STARTED))
        return ClaimError(f"cannot record the prepared claim in the checkpoint: {exc}", ErrorCode.CHECKPOINT_FAILED)

    def _fetch(self, claim: ClaimRef) -> dict[str, Any]:
        try:
            return self.kube.get_claim(claim.namespace, claim.name)
        except ApiError as exc:
            message = f"cannot read ResourceClaim {claim.namespace}/{claim.name}: {exc}"
            raise ClaimError(message, ErrorCode.CLAIM_UNREADABLE) from None

    def _check(self, claim: ClaimRef, obj: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """The claim's device results for this driver and its config entries, once its UID and pool are checked."""
        actual = obj.get("metadata", {}).get("uid")
        if actual != claim.uid:
            where = f"{claim.namespace}/{claim.name}"
            message = f"ResourceClaim {where} has UID {actual}, not {claim.uid} (deleted and recreated?)"
            raise ClaimError(message, ErrorCode.CLAIM_REPLACED)
        devices = ((obj.get("status") or {}).get("allocation") or {}).get("devices") or {}
        if not (obj.get("status") or {}).get("allocation"):
            raise ClaimError(f"ResourceClaim {claim.namespace}/{claim.name} is not allocated", ErrorCode.NOT_ALLOCATED)
        results = [r for r in devices.get("results") or [] if r.get("driver") == self.driver]
        for result in results:
            if result.get("pool") != self.pool:
                raise ClaimError(
                    f"device {result.get('device')} is allocated from pool {result.get('pool')!r}, "
                    f"but this node's pool is {self.pool!r}",
                    ErrorCode.WRONG_POOL,
                )
        return results, list(devices.get("config") or [])

    def _plan(
        self, claim: ClaimRef, results: list[dict[str, Any]], config_entries: list[dict[str, Any]]
    ) -> tuple[list[_Planned], Inventory, tuple[SharingOp, ...]]:
        try:
            configs = parse_configs(self.driver, config_entries)
            inventory = self._inventory()
            planned = [self._plan_device(r, inventory, configs) for r in results]
        except ConfigError as exc:
            raise ClaimError(str(exc), ErrorCode.INVALID_CONFIG) from None
        return planned, inventory, self._sharing_plan(claim.uid, planned)

    @staticmethod
    def _plan_device(result: dict[str, Any], inventory: Inventory, configs: Any) -> _Planned:
        device = inventory.devices.get(result["device"])
        if device is None:
            raise ClaimError(f"device {result['device']!r} is not published by this node", ErrorCode.UNKNOWN_DEVICE)
        return _Planned(result, device, config_for(configs, result["request"], device.mig))

    def _sharing_plan(self, uid: str, planned: list[_Planned]) -> tuple[SharingOp, ...]:
        items = [sharing_plan.Item(p.device, p.config, p.result, p.admin) for p in planned]
        try:
            return sharing_plan.plan(Path(paths.child(self._mps_root, uid)), items)
        except sharing_plan.SharingError as exc:
            raise ClaimError(str(exc), ErrorCode.INVALID_SHARING) from None

    def _start(
        self, claim: ClaimRef, planned: list[_Planned], inventory: Inventory, sharing: tuple[SharingOp, ...]
    ) -> ClaimRecord:
        uid = ClaimUID(claim.uid)
        static_uuids = {
            (g.uuid, m.start): (m.uuid, m.gi_id if m.gi_id is not None else -1, m.ci_id or 0)
            for g in inventory.gpus
            for m in g.mig_instances
        }
        if any(p.admin and p.device.dynamic for p in planned):  # existing dynamic instances, looked up now
            static_uuids.update(
                {(g.uuid, m.start): (m.uuid, m.gi_id, m.ci_id) for g in self.nvml.gpus() for m in g.mig_devices}
            )
        mig: list[MigOp] = []
        for p in planned:
            d = p.device
            if d.mig:
                create = d.dynamic and not p.admin
                uuid, gi, ci = ("", -1, 0) if create else static_uuids.get((d.gpu_uuid, d.start), ("", -1, 0))
                if p.admin and not uuid:
                    message = f"adminAccess to MIG device {d.name}, which does not exist now"
                    raise ClaimError(message, ErrorCode.ADMIN_DEVICE_MISSING)
                mig.append(MigOp(d.gpu_uuid, d.profile, d.start, create, uuid, gi, ci))
        keys = tuple(k for p in planned if not p.admin for k in p.device.exclusive_keys())
        record = ClaimRecord(
            uid=uid,
            namespace=claim.namespace,
            name=claim.name,
            state=ClaimState.PREPARE_STARTED,
            mig=tuple(mig),
            sharing=sharing,
            cdi_file=self.cdi.spec_file(claim.uid),
            exclusive=keys,
        )
        wanted = set(keys)
        if len(wanted) != len(keys):
            raise ClaimError("the allocation names overlapping devices", ErrorCode.OVERLAPPING_DEVICES)
        with self._lock:
            for other in self.records.values() if wanted else ():  # a shared device holds nothing exclusively
                if other.uid != uid and not wanted.isdisjoint(other.exclusive):
                    clash = wanted.intersection(other.exclusive)
                    held = ", ".join(p.device.name for p in planned if clash & set(p.device.exclusive_keys()))
                    message = f"device {held} is already prepared for claim {other.namespace}/{other.name}"
                    raise ClaimError(message, ErrorCode.DEVICE_IN_USE)
            self.records[uid] = record
            self._releasing.discard(uid)
        if record.mig or record.sharing:
            # Something to roll back after a crash. Without it the in-memory record is enough: a crash
            # before PrepareCompleted leaves at most a CDI file, which start-up removes as an orphan.
            try:
                self.persist()
            except OSError as exc:
                self._drop(uid)  # nothing done yet
                message = f"cannot record the prepare in the checkpoint: {exc}"
                raise ClaimError(message, ErrorCode.CHECKPOINT_FAILED) from None
        return record

    def _apply(self, record: ClaimRecord, planned: list[_Planned]) -> ClaimRecord:
        mig = list(record.mig)
        for i, mig_op in enumerate(mig):
            if mig_op.created:
                dev = self.nvml.create_mig(mig_op.gpu_uuid, mig_op.profile, mig_op.start)
                mig[i] = replace(mig_op, uuid=dev.uuid, gi_id=dev.gi_id, ci_id=dev.ci_id)
                record = replace(record, mig=tuple(mig))
                self._set(record)
        faults.crash_point("prepare-mig")
        by_name = {p.device.name: op for p, op in zip((p for p in planned if p.device.mig), mig)}
        uuids = {p.device.name: by_name[p.device.name].uuid if p.device.mig else p.device.gpu_uuid for p in planned}
        sharing = tuple(
            replace(op, gpu_uuids=tuple(uuids[n] for n in op.gpu_uuids)) if op.strategy == "MPS" else op
            for op in record.sharing
        )
        record = replace(record, sharing=sharing)
        self._set(record)
        for op in sharing:
            if op.strategy == "TimeSlicing":
                set_timeslice(self.runner, op.gpu_uuids[0], op.interval)  # idempotent, also when shared
            elif op.shared:
                with self._share_lock:
                    start_shared_mps(self.runner, op)
            else:
                start_mps(self.runner, op)
        faults.crash_point("prepare-sharing")
        cdi_devices = self._cdi_devices(record, planned, uuids, by_name)
        self.cdi.write(record.uid, cdi_devices)
        faults.crash_point("prepare-cdi")
        devices = tuple(
            PreparedDevice(
                request_names=(p.result["request"],),
                pool_name=self.pool,
                device_name=p.device.name,
                cdi_device_ids=(self.cdi.device_id(record.uid, p.device.name),),
                share_id=p.result.get("shareID"),
            )
            for p in planned
        )
        return replace(record, state=ClaimState.PREPARE_COMPLETED, devices=devices)

    def _cdi_devices(
        self, record: ClaimRecord, planned: list[_Planned], uuids: dict[str, str], mig: dict[str, MigOp]
    ) -> list[CdiDevice]:
        visible = ",".join(dict.fromkeys(uuids[p.device.name] for p in planned))
        out = []
        seen = set()
        for p in planned:
            d = p.device
            if d.name in seen:
                continue
            seen.add(d.name)
            nodes = [f"/dev/nvidia{d.gpu_minor}"]
            if d.mig:
                op = mig[d.name]
                nodes += [
                    f"/dev/nvidia-caps/nvidia-cap{mig_cap_minor(d.gpu_minor, op.gi_id)}",
                    f"/dev/nvidia-caps/nvidia-cap{mig_cap_minor(d.gpu_minor, op.gi_id, op.ci_id)}",
                ]
            env = {"NVIDIA_VISIBLE_DEVICES": visible}
            mounts: tuple[tuple[str, str], ...] = ()
            mps = next((o for o in record.sharing if o.strategy == "MPS" and uuids[d.name] in o.gpu_uuids), None)
            if mps is not None:
                env["CUDA_MPS_PIPE_DIRECTORY"] = MPS_PIPE_IN_CONTAINER
                mounts = ((str(Path(mps.mps_dir) / "pipe"), MPS_PIPE_IN_CONTAINER),)
                if mps.shared:  # the daemon is the GPU's: this claim's limits are per client
                    if mps.active_thread_percentage is not None:
                        env["CUDA_MPS_ACTIVE_THREAD_PERCENTAGE"] = str(mps.active_thread_percentage)
                    if mps.pinned_memory_limit:
                        env["CUDA_MPS_PINNED_DEVICE_MEM_LIMIT"] = f"0={mps.pinned_memory_limit}"
            out.append(CdiDevice(d.name, tuple(nodes), env, mounts))
        return out

    # --- unprepare --------------------------------------------------------------------------

    def unprepare(self, claims: list[ClaimRef]) -> dict[str, str]:
        """Unprepare each claim independently; several claims of one call in parallel, so that their
        checkpoint writes are shared (one fsync for the batch instead of one per claim)."""
        if len(claims) <= 1:
            return {claim.uid: self._unprepare_one(claim) for claim in claims}
        with ThreadPoolExecutor(max_workers=min(8, len(claims)), thread_name_prefix="unprepare") as pool:
            errors = list(pool.map(self._unprepare_one, claims))
        return {claim.uid: error for claim, error in zip(claims, errors)}

    def _unprepare_one(self, claim: ClaimRef) -> str:
        uid = ClaimUID(claim.uid)
        try:
            if uid not in self.records:  # a record (of an older build) is torn down whatever its reference
                check_ref(claim)
            with self._claim_lock(claim.uid):
                self._refuse_while_rebuilding()
                record = self.records.get(uid)
                if record is None:
                    return ""
                if not record.mig and not record.sharing:
                    self._unprepare_plain(record, self.persist)
                    return ""
                self._begin_unprepare(record, self.persist)
                self.teardown(record, crash_points=True)
                self._end_unprepare(record, self.persist)
                return ""
        except Exception as exc:  # never fail the whole batch
            return unprepare_failure(claim, exc, self.metrics)

    def _begin_unprepare(self, record: ClaimRecord, persist: Callable[[], None]) -> None:
        """Record ``UnprepareStarted`` durably before anything is torn down: from then on the claim is never
        answered as prepared (a kill or a failed write during the teardown leaves it to be finished)."""
        if record.state is ClaimState.UNPREPARE_STARTED:
            return
        self._set(replace(record, state=ClaimState.UNPREPARE_STARTED))
        try:
            persist()
        except OSError:
            self._set(record)  # nothing torn down yet: still what the checkpoint says
            raise
        faults.crash_point("unprepare-started")

    def _end_unprepare(self, record: ClaimRecord, persist: Callable[[], None]) -> None:
        """Drop the torn-down claim's record durably (a failed write keeps it ``UnprepareStarted``)."""
        self._drop(record.uid)
        try:
            persist()
        except OSError:
            self._set(replace(record, state=ClaimState.UNPREPARE_STARTED))  # the retry tears down again, drops it
            raise
        faults.crash_point("unprepare-done")

    def _unprepare_plain(self, record: ClaimRecord, persist: Callable[[], None]) -> None:
        """A claim with only a CDI spec: its record is dropped durably first, then the spec removed. A kill in
        between leaves the spec without a record, an orphan that start-up removes; never a record of a claim
        answered as prepared whose spec is gone."""
        self._drop(record.uid)
        try:
            persist()
        except OSError:
            self._set(record)  # nothing removed: still prepared
            raise
        self._remove_dropped_spec(record)

    def _remove_dropped_spec(self, record: ClaimRecord) -> None:
        """The second half of ``_unprepare_plain``, once the record's removal is on disk."""
        faults.crash_point("unprepare-dropped")
        try:
            self.teardown(record, crash_points=True)
        except OSError as exc:  # unprepared all the same: start-up removes the orphan spec
            log.warning("unprepare %s: the CDI spec stays until the next start: %s", record.uid, exc)

    def _undo(self, op: SharingOp) -> None:
        if op.strategy == "TimeSlicing":
            reset_timeslice(self.runner, op.gpu_uuids[0])
        else:
            stop_mps(self.runner, op, root=self._mps_root)

    def _held_by_others(self, uid: str, op: SharingOp) -> bool:
        """Whether another claim on the same shared GPU still needs ``op``'s setting or daemon (a claim whose
        teardown has begun, in this process or before a restart, no longer does)."""
        with self._lock:
            others = [
                r
                for r in self.records.values()
                if r.uid != uid and r.uid not in self._releasing and r.state is not ClaimState.UNPREPARE_STARTED
            ]
        key = (op.strategy, op.mps_dir if op.strategy == "MPS" else op.gpu_uuids[0])
        return any(
            o.shared and (o.strategy, o.mps_dir if o.strategy == "MPS" else o.gpu_uuids[0]) == key
            for r in others
            for o in r.sharing
        )

    def teardown(self, record: ClaimRecord, crash_points: bool = False) -> None:
        """Undo what ``record`` says was (or may have been) done; each step tolerates absent state.

        Two claims of a shared GPU torn down at once (one unprepare call, or two) must not each leave
        the GPU's setting to the other: a claim counts as released from the moment its teardown begins."""
        with self._lock:
            self._releasing.add(record.uid)
        steps = Steps(f"{record.namespace}/{record.name} ({record.uid})")  # every step runs; failures raised after
        for op in reversed(record.sharing):
            with steps.step("sharing"):
                if op.shared:
                    with self._share_lock:
                        if not self._held_by_others(record.uid, op):
                            self._undo(op)
                else:
                    self._undo(op)
        if crash_points:
            faults.crash_point("unprepare-sharing")
        with steps.step("cdi"):
            self.cdi.remove(record.uid)
        if crash_points:
            faults.crash_point("unprepare-cdi")
        with steps.step("mig"):
            self.destroy_created_mig(record, steps)
        if crash_points:
            faults.crash_point("unprepare-mig")
        steps.finish()

    def destroy_created_mig(self, record: ClaimRecord, steps: Steps | None = None) -> None:
        """Destroy the MIG instances ``record`` created, each only by the GPU instance ID and UUID it recorded:
        an instance at the same placement under another ID or UUID is somebody else's (a claim whose record
        was lost, a later claim), and one whose creation was never recorded (``gi_id`` -1) is left to
        start-up's sweep of instances no record holds. With ``steps``, each instance is a step of its own (one
        that fails does not keep the others)."""
        created = [m for m in record.mig if m.created and m.gi_id >= 0]
        if not created:
            return
        gpus = {g.uuid: g for g in self.nvml.gpus()}
        for mig_op in created:
            gpu = gpus.get(mig_op.gpu_uuid)
            for inst in gpu.mig_devices if gpu else ():
                if inst.gi_id == mig_op.gi_id and (not mig_op.uuid or inst.uuid == mig_op.uuid):
                    with steps.step("mig") if steps else contextlib.nullcontext():
                        self.nvml.destroy_mig(mig_op.gpu_uuid, inst.gi_id)
