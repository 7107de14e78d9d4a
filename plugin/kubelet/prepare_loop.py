"""Prepare/unprepare on the DRA server's event loop (``grpc.aio``), without a thread per claim.

A claim that needs only its CDI spec (no MIG instance, no sharing set-up, nothing to roll back) is
prepared on the loop: the ResourceClaim GET is awaited (``Kube.get_claim_async``), the checks and the CDI
write run inline, and the checkpoint's group commit is awaited while a thread makes it durable. Claims
with MIG instances or sharing, and retries of a started prepare, take :class:`Preparer`'s threaded path
on the executor. Per claim, one call at a time, under the loop's own lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator
from concurrent.futures import Executor
from typing import Any

from gpupolicy.plugin.kube import ApiError
from gpupolicy.plugin.kubelet import faults
from gpupolicy.plugin.kubelet.checkpoint import ClaimRecord, ClaimState, PreparedDevice
from gpupolicy.plugin.kubelet.claims import (
    ClaimError,
    ClaimRef,
    PrepareResult,
    check_ref,
    prepare_failure,
    unprepare_failure,
)
from gpupolicy.plugin.kubelet.metrics import ErrorCode
from gpupolicy.plugin.kubelet.prepare import Preparer
from gpupolicy.policy.k8s.ids import ClaimUID

log = logging.getLogger(__name__)


class LoopPreparer(Preparer):
    """:class:`Preparer` with the event-loop entry points the gRPC server uses."""

    @functools.cached_property
    def _async_locks(self) -> dict[str, tuple[asyncio.Lock, int]]:
        """Per claim: the loop's lock and how many calls hold or wait for it."""
        return {}

    async def prepare_async(self, claims: list[ClaimRef], executor: Executor) -> dict[str, PrepareResult]:
        """``prepare`` on the running event loop, for the gRPC server: a claim that needs only its CDI spec
        (no MIG instance, no sharing set-up, nothing to roll back) is prepared on the loop without a
        thread; the checkpoint write and any blocking step run on ``executor``. Once started, the claims
        are prepared to the end even if the call is cancelled (as a thread would finish them)."""
        work = asyncio.gather(*(self._prepare_one_async(claim, executor) for claim in claims))
        results = await asyncio.shield(work)
        return {claim.uid: result for claim, result in zip(claims, results)}

    async def _prepare_one_async(self, claim: ClaimRef, executor: Executor) -> PrepareResult:
        try:
            check_ref(claim)
            async with self._claim_lock_async(claim.uid):
                return PrepareResult(await self._prepare_locked_async(claim, executor))
        except Exception as exc:  # never fail the whole batch
            return prepare_failure(claim, exc, self.metrics)

    async def _prepare_locked_async(self, claim: ClaimRef, executor: Executor) -> tuple[PreparedDevice, ...]:
        self._refuse_while_rebuilding()
        uid = ClaimUID(claim.uid)
        record = self.records.get(uid)
        if record is not None and record.state is ClaimState.PREPARE_COMPLETED:
            return record.devices
        obj = await self._fetch_async(claim)
        loop = asyncio.get_running_loop()
        if record is not None:
            return await loop.run_in_executor(executor, self._prepare_fetched, claim, record, obj)
        planned, inventory, sharing = self._plan(claim, *self._check(claim, obj))
        if sharing or any(p.device.mig for p in planned):
            return await loop.run_in_executor(executor, self._prepare_fetched, claim, None, obj)
        started = self._start(claim, planned, inventory, sharing)  # nothing to roll back: not persisted
        faults.crash_point("prepare-started")
        try:
            done = self._apply(started, planned)  # the CDI spec only (tmpfs on real nodes)
        except OSError as exc:
            self._discard(uid, started)
            try:
                await self._commit.commit_async(executor)
            except OSError as write_error:  # nothing of it was on disk: nothing to roll back after a crash
                log.warning("cannot record the rollback of %s: %s", claim, write_error)
            raise ClaimError(f"preparing devices failed (rolled back): {exc}", ErrorCode.SETUP_FAILED) from None
        self._set(done)
        try:
            await self._commit.commit_async(executor)
        except OSError as exc:
            raise self._not_recorded(done, exc) from None
        faults.crash_point("prepare-completed")
        return done.devices

    async def _fetch_async(self, claim: ClaimRef) -> dict[str, Any]:
        try:
            return await self.kube.get_claim_async(claim.namespace, claim.name)
        except ApiError as exc:
            message = f"cannot read ResourceClaim {claim.namespace}/{claim.name}: {exc}"
            raise ClaimError(message, ErrorCode.CLAIM_UNREADABLE) from None

    async def unprepare_async(self, claims: list[ClaimRef], executor: Executor) -> dict[str, str]:
        """``unprepare`` for the gRPC server, under the same per-claim lock as ``prepare_async``: a claim with
        only a CDI spec on the loop, one with MIG instances or sharing (which block) on ``executor``; run to
        the end even if the call is cancelled."""
        loop = asyncio.get_running_loop()

        async def one(claim: ClaimRef) -> str:
            try:
                if ClaimUID(claim.uid) not in self.records:  # a record is torn down whatever its reference
                    check_ref(claim)
            except ClaimError as exc:
                return unprepare_failure(claim, exc, self.metrics)
            async with self._claim_lock_async(claim.uid):
                record = self.records.get(ClaimUID(claim.uid))
                if record is not None and not record.mig and not record.sharing and not self.rebuilding:
                    return await self._unprepare_plain_async(claim, record, executor)
                return await loop.run_in_executor(executor, self._unprepare_one, claim)

        errors = await asyncio.shield(asyncio.gather(*(one(claim) for claim in claims)))
        return {claim.uid: error for claim, error in zip(claims, errors)}

    async def _unprepare_plain_async(self, claim: ClaimRef, record: ClaimRecord, executor: Executor) -> str:
        """``_unprepare_plain`` on the loop (a record without MIG or sharing): the record is dropped durably,
        then the CDI spec removed."""
        try:
            self._drop(record.uid)
            try:
                await self._commit.commit_async(executor)
            except OSError:
                self._set(record)  # nothing removed: still prepared
                raise
            self._remove_dropped_spec(record)
            return ""
        except Exception as exc:  # never fail the whole batch
            return unprepare_failure(claim, exc, self.metrics)

    @contextlib.asynccontextmanager
    async def _claim_lock_async(self, uid: str) -> AsyncIterator[None]:
        """One prepare or unprepare of a claim at a time among the server's calls (the loop's own lock:
        a thread's lock would block the loop); forgotten when nobody holds or waits for it."""
        lock, users = self._async_locks.get(uid, (None, 0))
        if lock is None:
            lock = asyncio.Lock()
        self._async_locks[uid] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._async_locks[uid]
            if users == 1:
                del self._async_locks[uid]
            else:
                self._async_locks[uid] = (lock, users - 1)
