"""The plugin's checkpoint: what each claim prepared on this node, crash-safe.

The file (``checkpoint.json``), its versions and their checksums are described in
``checkpoint_schema``; this build writes version 2 and reads versions 1 and 2::

    {"bootId": "...", "checksum": "sha256:<hex>", "claimChecksums": {"<uid>": "sha256:<hex>"},
     "claims": {"<uid>": {...}}, ["needsRebuild": "<why>",] "version": 2}

Writes go to a temporary file that is written in full, fsynced and renamed over the old one
(``fsutil``), so a crash leaves either the old or the new checkpoint. A file that cannot be read, does
not parse, fails a checksum or its schema is moved aside (``checkpoint.json.corrupt-<n>``; left where it
is when even that fails) and ``load`` says the records must be rebuilt (``LoadResult.rebuild``). A file
of a version newer than this build knows is not corrupt: ``load`` raises ``CheckpointVersionUnsupported``
and leaves it as it is, and the plugin does not start. A checkpoint from another boot is discarded,
because a reboot destroys MIG instances, MPS daemons and the CDI files in ``/var/run``.

``needs_rebuild`` is written into the file while the records are being rebuilt from the API server
(``needsRebuild``): a restart then knows that the file's claims are not all there is, and cleans up
nothing until a rebuild succeeds.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
import logging
import os
import threading
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gpupolicy.plugin.fsutil import PendingWrite, begin_atomic, finish_atomic, write_atomic
from gpupolicy.plugin.kubelet.checkpoint_schema import (
    VERSION,
    CheckpointCorrupt,
    ClaimV2,
    canonical,
    claim_checksum,
    decode,
    header_checksum,
)
from gpupolicy.policy.k8s.ids import ClaimUID

FILE_NAME = "checkpoint.json"
SYNC_DIR = False
"""The folder is not fsynced after the rename: that would only make the rename itself survive a power
loss, and after one the boot ID differs and all prepared state is discarded anyway (it cost 3-4 ms a
write on ext4, on top of the file's fsync)."""
log = logging.getLogger(__name__)


class ClaimState(enum.Enum):
    PREPARE_STARTED = "PrepareStarted"
    """Set-up has begun: whatever it did is rolled back before anything else happens to the claim."""
    PREPARE_COMPLETED = "PrepareCompleted"
    """Set up, and answered as prepared."""
    UNPREPARE_STARTED = "UnprepareStarted"
    """Teardown has begun: never answered as prepared again; the teardown is finished first."""


@dataclass(frozen=True)
class PreparedDevice:
    """One device of a prepared claim, as returned to kubelet."""

    request_names: tuple[str, ...]
    pool_name: str
    device_name: str
    cdi_device_ids: tuple[str, ...]
    share_id: str | None = None


@dataclass(frozen=True)
class MigOp:
    """A MIG instance the claim needs: created by prepare when ``created`` (else it pre-existed)."""

    gpu_uuid: str
    profile: str
    start: int
    created: bool
    uuid: str = ""
    gi_id: int = -1
    ci_id: int = 0


@dataclass(frozen=True)
class SharingOp:
    """Time-slicing on ``gpu_uuid`` (``interval``) or an MPS daemon in ``mps_dir``."""

    strategy: str
    gpu_uuids: tuple[str, ...]
    interval: str = ""
    mps_dir: str = ""
    active_thread_percentage: int | None = None
    pinned_memory_limit: str = ""
    shared: bool = False
    """Held together with other claims on a shared GPU: set up by the first, undone by the last."""


@dataclass(frozen=True)
class ClaimRecord:
    uid: ClaimUID
    namespace: str
    name: str
    state: ClaimState
    devices: tuple[PreparedDevice, ...] = ()
    mig: tuple[MigOp, ...] = ()
    sharing: tuple[SharingOp, ...] = ()
    cdi_file: str = ""
    exclusive: tuple[str, ...] = field(default=())
    """Physical resources held exclusively (``gpu:<uuid>`` or ``mig:<uuid>:<start>``)."""

    def to_json(self) -> dict[str, Any]:
        """The record as ``dataclasses.asdict`` gives it (state as its value), built directly: asdict
        deep-copies every leaf, which made it the largest cost of encoding a checkpoint."""
        return {
            "uid": self.uid,
            "namespace": self.namespace,
            "name": self.name,
            "state": self.state.value,
            "devices": [
                {
                    "request_names": list(d.request_names),
                    "pool_name": d.pool_name,
                    "device_name": d.device_name,
                    "cdi_device_ids": list(d.cdi_device_ids),
                    "share_id": d.share_id,
                }
                for d in self.devices
            ],
            "mig": [vars(m).copy() for m in self.mig],
            "sharing": [{**vars(s), "gpu_uuids": list(s.gpu_uuids)} for s in self.sharing],
            "cdi_file": self.cdi_file,
            "exclusive": list(self.exclusive),
        }

    @classmethod
    def from_model(cls, claim: ClaimV2) -> ClaimRecord:
        """The record of a decoded claim (read at start-up only: the writer never goes through pydantic)."""
        return cls(
            uid=ClaimUID(claim.uid),
            namespace=claim.namespace,
            name=claim.name,
            state=ClaimState(claim.state),
            devices=tuple(
                PreparedDevice(
                    request_names=tuple(d.request_names),
                    pool_name=d.pool_name,
                    device_name=d.device_name,
                    cdi_device_ids=tuple(d.cdi_device_ids),
                    share_id=d.share_id,
                )
                for d in claim.devices
            ),
            mig=tuple(MigOp(m.gpu_uuid, m.profile, m.start, m.created, m.uuid, m.gi_id, m.ci_id) for m in claim.mig),
            sharing=tuple(
                SharingOp(
                    strategy=o.strategy,
                    gpu_uuids=tuple(o.gpu_uuids),
                    interval=o.interval,
                    mps_dir=o.mps_dir,
                    active_thread_percentage=o.active_thread_percentage,
                    pinned_memory_limit=o.pinned_memory_limit,
                    shared=o.shared,
                )
                for o in claim.sharing
            ),
            cdi_file=claim.cdi_file,
            exclusive=tuple(claim.exclusive),
        )


def read_boot_id(path: Path = Path("/proc/sys/kernel/random/boot_id")) -> str:
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError:
        return "unknown"


@dataclass
class LoadResult:
    records: dict[ClaimUID, ClaimRecord]
    corrupted: Path | None = None
    """Where a corrupted checkpoint was moved, when it was."""
    boot_changed: bool = False
    version: int | None = None
    """The version the file was written in (``None``: no file, or a corrupted one); the next write is ``VERSION``."""
    rebuild: str = ""
    """Why the records must be rebuilt from the API server before anything is cleaned up: the file was
    damaged (``corrupted``, or left in place when it could not be moved), or says so (``needsRebuild``)."""
    missing: bool = False
    """There was no file."""
    damaged: bool = False
    """The file was damaged (``rebuild`` says how)."""


class Checkpoint:
    """The checkpoint file of ``state_dir``; ``save`` is atomic and serialized."""

    def __init__(self, state_dir: Path, boot_id: str) -> None:
        self.path = state_dir / FILE_NAME
        self.boot_id = boot_id
        self.needs_rebuild = ""
        """Written as ``needsRebuild`` by every write while set (the records are being rebuilt)."""
        self._lock = threading.Lock()
        self._memo: dict[str, tuple[ClaimRecord, str, str]] = {}

    def load(self) -> LoadResult:
        """The records of this boot. A damaged file is moved aside (``corrupted``) and ``rebuild`` says why; one
        of a newer version raises ``CheckpointVersionUnsupported`` and stays where and as it is."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return LoadResult({}, missing=True)
        except OSError as exc:  # a folder in its place, an I/O error: as damaged as bad content
            return self._corrupt(CheckpointCorrupt(str(self.path), f"cannot be read ({exc.strerror or exc})"))
        try:
            doc, version = decode(raw, str(self.path))
        except CheckpointCorrupt as exc:
            return self._corrupt(exc)
        if version != VERSION:
            log.info("checkpoint %s is version %d; it will be written as version %d", self.path, version, VERSION)
        if doc.bootId != self.boot_id:
            log.warning(
                "checkpoint is from boot %s, this is boot %s: discarding prepared state", doc.bootId, self.boot_id
            )
            return LoadResult({}, boot_changed=True, version=version)
        records = {ClaimUID(uid): ClaimRecord.from_model(claim) for uid, claim in doc.claims.items()}
        self.needs_rebuild = doc.needsRebuild
        if doc.needsRebuild:
            log.warning("checkpoint %s says its records are incomplete: %s", self.path, doc.needsRebuild)
        return LoadResult(records, version=version, rebuild=doc.needsRebuild)

    def _corrupt(self, exc: CheckpointCorrupt) -> LoadResult:
        try:
            moved: Path | None = self._move_aside()
        except OSError as move_error:  # a read-only or failing state folder: left where it is
            log.error("%s; cannot move it aside (%s), rebuilding state", exc, move_error)
            moved = None
        else:
            log.error("%s; moved to %s, rebuilding state", exc, moved)
        where = f"moved to {moved}" if moved else "left in place (it could not be moved)"
        return LoadResult({}, corrupted=moved, rebuild=f"checkpoint is corrupt ({exc}); {where}", damaged=True)

    def _move_aside(self) -> Path:
        n = 0
        while os.path.lexists(target := self.path.with_name(f"{FILE_NAME}.corrupt-{n}")):
            n += 1
        os.replace(self.path, target)
        return target

    def save(self, records: dict[ClaimUID, ClaimRecord]) -> None:
        """Write ``records`` atomically and durably (saves are serialized)."""
        with self._lock:
            write_atomic(self.path, self._encode(records), sync_dir=SYNC_DIR)

    def begin_write(self, records: dict[ClaimUID, ClaimRecord]) -> PendingWrite:
        """The first half of ``save`` for an event loop: encode and write a temporary file into the page
        cache (no waiting for the disk). ``end_write`` makes it durable and puts it in place; the caller
        serializes writes (``GroupCommit``)."""
        return begin_atomic(self.path, self._encode(records))

    def end_write(self, pending: PendingWrite) -> None:
        """The second half: fsync, then rename over the checkpoint (blocks on the disk: run on a thread)."""
        finish_atomic(pending, sync_dir=SYNC_DIR)

    def _encode(self, records: dict[ClaimUID, ClaimRecord]) -> bytes:
        """The file's bytes, canonical JSON of version 2 built as text: each record's JSON and checksum are
        computed once per version of the record (no pydantic here: the decoder checks the shape)."""
        claims = []
        sums = []
        for uid, record in sorted(records.items()):
            cached = self._memo.get(uid)
            if cached is None or cached[0] is not record:
                key = json.dumps(str(uid))
                text = canonical(record.to_json())
                cached = (record, f"{key}:{text}", f'{key}:"{claim_checksum(text)}"')
                self._memo[uid] = cached
            claims.append(cached[1])
            sums.append(cached[2])
        for stale in set(self._memo) - set(records):
            del self._memo[stale]
        sums_text = "{" + ",".join(sums) + "}"
        boot = json.dumps(self.boot_id)
        rebuild = json.dumps(self.needs_rebuild) if self.needs_rebuild else None
        checksum = header_checksum(boot, sums_text, rebuild)
        marker = f',"needsRebuild":{rebuild}' if rebuild else ""
        return (
            f'{{"bootId":{boot},"checksum":"{checksum}","claimChecksums":{sums_text},'
            f'"claims":{{{",".join(claims)}}}{marker},"version":{VERSION}}}'
        ).encode()


class GroupCommit:
    """Concurrent callers of ``commit`` (threads) and ``commit_async`` (coroutines) share checkpoint
    writes; each returns once the records as they were when it called are on disk.

    One write at a time: a caller that arrives during a write waits for it to end, and the next
    write (by one of the waiters) covers everyone who arrived meanwhile. Waiters sleep on a
    condition (threads) or a future (coroutines) and are all woken when a write ends; handing a
    plain lock from waiter to waiter made each of them wait for the GIL in turn, which with 64
    concurrent prepares added tens of milliseconds. (Overlapping writes were tried: on this disk
    parallel fsyncs queue behind each other and made it slower.) A failed write raises in its
    writer; the callers it would have covered try again.
    """

    def __init__(self, snapshot: Callable[[], dict[ClaimUID, ClaimRecord]], checkpoint: Checkpoint) -> None:
        self._snapshot = snapshot
        self._checkpoint = checkpoint
        self._cond = threading.Condition(threading.Lock())
        self._requested = 0
        self._durable = 0
        self._writing = False
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        self.writes = 0

    def commit(self) -> None:
        with self._cond:
            self._requested += 1
            ticket = self._requested
            while self._durable < ticket:
                if self._writing:
                    self._cond.wait()
                    continue
                self._writing = True
                self._cond.release()
                try:
                    self._write()
                finally:
                    self._cond.acquire()

    async def commit_async(self, executor: Executor) -> None:
        """``commit`` for a coroutine: the write runs on ``executor``, waiting does not hold a thread."""
        loop = asyncio.get_running_loop()
        with self._cond:
            self._requested += 1
            ticket = self._requested
        while True:
            with self._cond:
                if self._durable >= ticket:
                    return
                write = not self._writing
                if write:
                    self._writing = True
                else:
                    woken: asyncio.Future[None] = loop.create_future()
                    self._waiters.append((loop, woken))
            if write:
                await self._write_async(loop, executor)
            else:
                await woken

    async def _write_async(self, loop: asyncio.AbstractEventLoop, executor: Executor) -> None:
        """One write by the coroutine that set ``_writing``: the file is written on the loop, the fsync and
        rename on ``executor``, whose thread also wakes the waiters (a turn of the loop sooner). Even if
        this coroutine is cancelled, the write runs to its end and wakes the others."""
        covers, records = self._begin()
        try:
            pending = self._checkpoint.begin_write(records)
        except BaseException:
            self._end(covers, written=False)
            raise
        await loop.run_in_executor(executor, self._end_write, pending, covers)

    def _end_write(self, pending: PendingWrite, covers: int) -> None:
        written = False
        try:
            self._checkpoint.end_write(pending)
            written = True
        finally:
            self._end(covers, written)

    def _write(self) -> None:
        """One write by the thread that set ``_writing``."""
        covers, records = self._begin()
        written = False
        try:
            self._checkpoint.save(records)
            written = True
        finally:
            self._end(covers, written)

    def _begin(self) -> tuple[int, dict[ClaimUID, ClaimRecord]]:
        with self._cond:
            return self._requested, self._snapshot()  # after every change of the tickets up to the first

    def _end(self, covers: int, written: bool) -> None:
        """A write ended: every waiter is woken, to return (``covers`` is durable) or to write again."""
        with self._cond:
            self._writing = False
            if written:
                self._durable = max(self._durable, covers)
                self.writes += 1
            self._cond.notify_all()
            by_loop: dict[asyncio.AbstractEventLoop, list[asyncio.Future[None]]] = {}
            for loop, woken in self._waiters:
                by_loop.setdefault(loop, []).append(woken)
            self._waiters.clear()
        for loop, futures in by_loop.items():  # one wake-up per loop, not one per waiter
            with contextlib.suppress(RuntimeError):  # its loop is closed: nobody waits any more
                loop.call_soon_threadsafe(_resolve, futures)


def _resolve(futures: list[asyncio.Future[None]]) -> None:
    for future in futures:
        if not future.done():
            future.set_result(None)
