"""Publishing this node's ResourceSlices: one pool named after the node, owned by the Node.

``Publisher.sync`` compares what the API server has with what the builder produces now; when
anything differs (devices, health taints, the Node's UID, a slice deleted or edited behind our
back) it writes the whole pool again under the next generation, so consumers never mix
generations. A thread runs ``sync`` on start, when poked and every ``resync_s``, retrying failures
with exponential backoff; the plugin keeps serving kubelet while the API server is unreachable.

How the slices are kept: two watches poke the thread, one of this node's slices of this driver
(kubelet deletes all slices of its node when it starts; somebody may edit or delete one) and one
of the Node (slices published before it existed get it as owner once it is created; a re-created
Node has a new UID). A health change pokes too. A burst of pokes (kubelet deletes the slices one
by one) waits ``settle_s`` without another, then is one sync. Our own writes come back as events
too: the sync they cause finds nothing to change and writes nothing. The periodic resync stays as
the fallback for a watch that fails (API server down, RBAC without ``watch``), which the client
retries with backoff and logs once per outage.
"""

from __future__ import annotations

import contextlib
import logging
import random
import threading
import time
from collections.abc import Callable
from typing import Any

from gpupolicy.plugin.kube import ApiError, NotFound, Obj
from gpupolicy.plugin.kubelet.api import Kube
from gpupolicy.plugin.kubelet.metrics import PluginMetrics
from gpupolicy.policy.builder import NodeRef

log = logging.getLogger(__name__)
BuildSlices = Callable[[NodeRef, int], list[Obj]]
Watch = Callable[[threading.Event, Callable[[], None]], None]
"""A watch of :class:`Kube` with its object named: runs until the event, calls the callback on every change."""
SETTLE_ROUNDS = 10
"""A burst of pokes delays the sync by at most this many ``settle_s``."""


def _covers(actual: Any, wanted: Any) -> bool:
    """Whether ``actual`` says what ``wanted`` says: same values, and extra fields only when empty
    (the API server may add defaulted fields, but a taint somebody left behind is a difference)."""
    if isinstance(wanted, dict):
        if not isinstance(actual, dict) or any(actual[k] for k in set(actual) - set(wanted)):
            return False
        return all(k in actual and _covers(actual[k], v) for k, v in wanted.items())
    if isinstance(wanted, list):
        return isinstance(actual, list) and len(actual) == len(wanted) and all(map(_covers, actual, wanted))
    return bool(actual == wanted)


def _without_generation(obj: Obj) -> Obj:
    spec = dict(obj.get("spec") or {})
    pool = dict(spec.get("pool") or {})
    pool.pop("generation", None)
    spec["pool"] = pool
    return {"spec": spec, "owners": (obj.get("metadata") or {}).get("ownerReferences")}


class Publisher:
    def __init__(
        self,
        kube: Kube,
        driver: str,
        node: str,
        build: BuildSlices,
        *,
        resync_s: float = 30.0,
        backoff_s: tuple[float, float] = (0.2, 30.0),
        metrics: PluginMetrics | None = None,
        settle_s: float = 0.2,
    ) -> None:
        self._kube = kube
        self.driver = driver
        self.node = node
        self._build = build
        self._resync_s = resync_s
        self._backoff = backoff_s
        self._settle_s = settle_s
        self._metrics = metrics
        self.generation = 0
        self._node_uid = ""
        self._node_missing = False
        self.published = threading.Event()
        self.syncs = 0
        self.writes = 0
        self.last_error = ""
        self._poke = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="publisher", daemon=True)
        watches: dict[str, Watch] = {
            "slices": lambda stop, changed: kube.watch_slices(driver, node, stop, changed),
            "node": lambda stop, changed: kube.watch_node(node, stop, changed),
        }
        self.watchers = [
            threading.Thread(target=self._watch, args=(what, watch), name=f"publisher-watch-{what}", daemon=True)
            for what, watch in watches.items()
        ]
        """Threads that poke on every change of the watched objects; they end at their next event after ``stop``."""

    def _node_ref(self) -> NodeRef:
        """The owning Node, read on every sync: a re-created Node has a new UID, and slices owned by
        the old one would be garbage-collected."""
        try:
            self._node_uid = str(self._kube.get_node(self.node)["metadata"].get("uid") or "")
            self._node_missing = False
        except NotFound:
            if not self._node_missing:  # once until it is found: the Node's watch brings the sync that owns them
                log.warning("Node %s not found: publishing slices without an owner", self.node)
            self._node_uid, self._node_missing = "", True
        return NodeRef(self.node, self._node_uid)

    def sync(self) -> bool:
        """Make the API server hold exactly the desired slices; True when something was written."""
        self.syncs += 1
        ref = self._node_ref()
        existing = {s["metadata"]["name"]: s for s in self._kube.list_slices(self.driver, self.node)}
        generations = {int(s["spec"]["pool"].get("generation", 0)) for s in existing.values()}
        current = max(generations, default=0)
        desired = self._build(ref, max(current, 1))
        if (
            len(generations) == 1
            and set(existing) == {d["metadata"]["name"] for d in desired}
            and all(
                _covers(_without_generation(existing[d["metadata"]["name"]]), _without_generation(d)) for d in desired
            )
        ):
            self.generation = current
            self._published(desired)
            return False
        self.generation = max(self.generation, current) + 1
        desired = self._build(ref, self.generation)
        for obj in desired:
            name = obj["metadata"]["name"]
            if name in existing:
                body = {
                    **obj,
                    "metadata": {**obj["metadata"], "resourceVersion": existing[name]["metadata"]["resourceVersion"]},
                }
                self._kube.replace_slice(body)
            else:
                self._kube.create_slice(obj)
        for name in set(existing) - {d["metadata"]["name"] for d in desired}:
            with contextlib.suppress(NotFound):
                self._kube.delete_slice(name)
        self.writes += 1
        log.info("published %d ResourceSlice(s) of pool %s, generation %d", len(desired), self.node, self.generation)
        self._published(desired)
        return True

    def _published(self, slices: list[Obj]) -> None:
        if self._metrics is not None:
            self._metrics.published(slices)

    def withdraw(self) -> int:
        """Delete every slice of this driver on this node (uninstall); returns how many."""
        names = [s["metadata"]["name"] for s in self._kube.list_slices(self.driver, self.node)]
        for name in names:
            with contextlib.suppress(NotFound):
                self._kube.delete_slice(name)
        return len(names)

    def poke(self) -> None:
        self._poke.set()

    def start(self) -> None:
        for watcher in self.watchers:
            watcher.start()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._poke.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            self._poke.clear()
            try:
                self.sync()
                self.published.set()
                failures, self.last_error = 0, ""
                delay = self._resync_s
            except ApiError as exc:
                failures += 1
                base, cap = self._backoff
                delay = min(cap, base * 2 ** (failures - 1)) * random.uniform(0.8, 1.2)
                self.last_error = str(exc)
                log.warning("publishing ResourceSlices failed (attempt %d, retry in %.1fs): %s", failures, delay, exc)
            except Exception:
                failures += 1
                delay = self._backoff[1]
                log.exception("publishing ResourceSlices failed")
            self._wait(delay)

    def _wait(self, delay: float) -> None:
        """``delay``, or until a poke and then ``settle_s`` without another (a burst is one sync)."""
        if not self._poke.wait(delay):
            return
        deadline = time.monotonic() + self._settle_s * SETTLE_ROUNDS
        while not self._stop.is_set() and time.monotonic() < deadline:
            self._poke.clear()
            if not self._poke.wait(self._settle_s):
                return

    def _watch(self, what: str, watch: Watch) -> None:
        """A watch thread; should the watch end on an error (it retries API failures itself), the periodic resync
        is left."""
        try:
            watch(self._stop, self.poke)
        except Exception:
            log.exception("the watch of the %s ended; slices are checked every %gs only", what, self._resync_s)
