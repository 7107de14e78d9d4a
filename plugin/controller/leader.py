"""Leader election with a ``coordination.k8s.io/v1`` Lease, as client-go's leaderelection does it.

A replica may write only while it holds the Lease. Expiry is judged by the local clock since this replica last
saw the Lease change (its resourceVersion), never by comparing timestamps written by another machine, so clock
skew between replicas cannot make two of them leaders. Every change goes through an update carrying the
resourceVersion just read: of two replicas racing for an expired Lease, one gets a conflict and stays a follower.
A leader that could not renew within ``renew_deadline_s`` stops writing, before its Lease can expire.

Fencing (what :class:`gpupolicy.plugin.controller.fence.Fenced` does with this): :meth:`LeaderElector.is_leader` is
checked right before every write, and a write may stay in flight at most :attr:`LeaderElector.write_timeout_s`
twice over (urllib3 applies a timeout to the connection and again to the answer). The renewal that counts was
sent after the local instant ``_renewed_at`` was taken, so no other replica can see the Lease change, and then
let it expire, before ``_renewed_at + lease_duration_s``; a write checked before ``_renewed_at +
renew_deadline_s`` is over, answered or given up, by ``_renewed_at + renew_deadline_s + 2 * write_timeout_s`` =
``_renewed_at + lease_duration_s``.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from gpupolicy.plugin.kube import Api, ApiError, Conflict, NotFound, Obj
from gpupolicy.plugin.timefmt import kube_micro_time


@dataclass
class LeaderElector:
    api: Api
    identity: str
    namespace: str = "kube-system"
    name: str = "gpupolicy-controller"
    lease_duration_s: float = 15.0
    renew_deadline_s: float = 10.0
    clock: Callable[[], float] = time.monotonic
    wall: Callable[[], float] = time.time
    _seen_rv: str = ""
    _seen_at: float = 0.0
    _renewed_at: float | None = field(default=None)
    last_error: ApiError | None = field(default=None)
    """Why the last try to acquire or renew failed, when the API server did not answer it (a conflict is not an
    error: another replica wrote the Lease first); None after an answer."""

    def __post_init__(self) -> None:
        if not 0 < self.renew_deadline_s < self.lease_duration_s:
            raise ValueError("the renew deadline must be positive and shorter than the lease duration")

    @property
    def write_timeout_s(self) -> float:
        """How long one write may wait for the API server: half the margin between the renew deadline and the
        lease duration (a write checked just before the deadline is over, twice this later, before the Lease
        can expire for another replica)."""
        return (self.lease_duration_s - self.renew_deadline_s) / 2

    def is_leader(self) -> bool:
        """Held, and renewed recently enough that no other replica can have taken it over."""
        return self._renewed_at is not None and self.clock() - self._renewed_at < self.renew_deadline_s

    def ensure(self) -> bool:
        """Leader now: renew when a third of the lease has passed since the last renewal, else trust it."""
        if self._renewed_at is not None and self.clock() - self._renewed_at < self.lease_duration_s / 3:
            return True
        return self.try_acquire_or_renew()

    def try_acquire_or_renew(self) -> bool:
        now = self.clock()
        try:
            lease = self.api.get("leases", self.namespace, self.name)
        except NotFound:
            return self._create(now)
        except ApiError as exc:
            return self._failed(exc)
        self.last_error = None
        rv = str(lease["metadata"].get("resourceVersion", ""))
        if rv != self._seen_rv:
            self._seen_rv, self._seen_at = rv, now
        spec = lease.get("spec") or {}
        holder = spec.get("holderIdentity") or ""
        duration = float(spec.get("leaseDurationSeconds") or self.lease_duration_s)
        if holder and holder != self.identity and now - self._seen_at < duration:
            self._renewed_at = None
            return False
        return self._update(lease, holder, now)

    def release(self) -> None:
        """Give the Lease up on a clean shutdown, so another replica need not wait for it to expire."""
        if self._renewed_at is None:
            return
        try:
            lease = self.api.get("leases", self.namespace, self.name)
            if (lease.get("spec") or {}).get("holderIdentity") == self.identity:
                lease["spec"]["holderIdentity"] = ""
                lease["spec"]["leaseDurationSeconds"] = 1
                self.api.update("leases", lease)
        except ApiError:
            pass
        self._renewed_at = None

    def _spec(self, acquired: str, transitions: int) -> Obj:
        return {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": math.ceil(self.lease_duration_s),  # never shorter than what we count with
            "acquireTime": acquired,
            "renewTime": kube_micro_time(self.wall()),
            "leaseTransitions": transitions,
        }

    def _create(self, now: float) -> bool:
        lease = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": self.name, "namespace": self.namespace},
            "spec": self._spec(kube_micro_time(self.wall()), 0),
        }
        try:
            created = self.api.create("leases", lease)
        except ApiError as exc:
            return self._failed(exc)
        self.last_error = None
        self._seen_rv, self._seen_at, self._renewed_at = str(created["metadata"].get("resourceVersion", "")), now, now
        return True

    def _update(self, lease: Obj, holder: str, now: float) -> bool:
        spec = lease.get("spec") or {}
        mine = holder == self.identity
        transitions = int(spec.get("leaseTransitions") or 0) + (0 if mine else 1)
        acquired = spec.get("acquireTime") if mine and spec.get("acquireTime") else kube_micro_time(self.wall())
        wanted = copy.deepcopy(lease)
        wanted["spec"] = self._spec(str(acquired), transitions)
        try:
            updated = self.api.update("leases", wanted)
        except ApiError as exc:
            return self._failed(exc)
        self.last_error = None
        self._seen_rv, self._seen_at, self._renewed_at = str(updated["metadata"].get("resourceVersion", "")), now, now
        return True

    def _failed(self, exc: ApiError) -> bool:
        self.last_error = None if isinstance(exc, Conflict) else exc
        return self.is_leader()
