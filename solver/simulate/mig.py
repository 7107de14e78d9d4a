"""The MIG variant: the same trace on a cluster whose GPUs are all H100-80GB with dynamic MIG.

A shared pod asks for the smallest MIG profile whose compute fraction covers its share
(1g/7, 2g/7, 3g/7, 4g/7, 7g); a whole-GPU pod takes whole, unpartitioned GPUs. A GPU's state
is its occupied memory slots (a bit mask over 8) and its compute slices in use; an instance
fits where its memory slots are free and the slices add up to at most 7 (the catalog's
placement rules). We report compute slices in use versus the total.

- ``first-fit``: the reference driver's device order: nodes in order, then GPUs, then each
  profile's placements in catalog order; the first free one.
- ``online``: the placement whose GPU loses least "placeability" of the profile mix seen so
  far (free slices a profile can no longer use, weighted by how often it arrived) plus the
  growth of its node's *shortfall* (free slices that the node's CPU or memory could no longer
  serve at the CPU and memory per slice of the GPU pods seen so far); ties to the tightest GPU
  and a fixed node order. CPU-only pods go where the shortfall grows least, i.e. where CPU
  and memory most exceed what the free slices will need.
- ``batch``: windows of arrivals placed jointly with CP-SAT (:mod:`gpupolicy.solver.simulate.mig_batch`).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from gpupolicy.policy.catalog import MigProfile, get_model
from gpupolicy.solver.simulate.protocol import arrival_order
from gpupolicy.solver.simulate.replay import bucket_means
from gpupolicy.solver.simulate.trace import MILLI, Nodes, Pods

if TYPE_CHECKING:
    from gpupolicy.solver.simulate.mig_batch import MigBatchConfig

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
WHOLE = -1
HEADROOM = 1.0  # online: weight of the growth of a node's CPU/memory shortfall, in slices


@dataclass(frozen=True)
class Profiles:
    names: tuple[str, ...]
    compute: I64  # slices per profile
    masks: tuple[tuple[int, ...], ...]  # memory-slot bit masks of each placement, catalog order
    slices: int  # compute slices per GPU (7)
    slots: int  # memory slots per GPU (8)


def h100_profiles() -> Profiles:
    model = get_model("H100-80GB")
    chosen: dict[int, MigProfile] = {}
    for p in model.mig_profiles:
        if p.media_extension or p.graphics:
            continue
        best = chosen.get(p.compute_slices)
        if best is None or p.memory_slots < best.memory_slots:  # 1g.10gb over 1g.20gb
            chosen[p.compute_slices] = p
    ordered = [chosen[k] for k in sorted(chosen)]
    return Profiles(
        names=tuple(p.name for p in ordered),
        compute=np.array([p.compute_slices for p in ordered], dtype=np.int64),
        masks=tuple(tuple(sum(1 << s for s in pl.slots) for pl in p.placements) for p in ordered),
        slices=model.mig_compute_slices,
        slots=model.mig_memory_slots,
    )


def profile_of(milli: int, num: int, prof: Profiles) -> int:
    """Profile index a pod asks for (WHOLE for whole-GPU pods, -2 for CPU-only pods)."""
    if num == 0:
        return -2
    if milli >= MILLI:
        return WHOLE
    need = milli / MILLI
    for q, c in enumerate(prof.compute):
        if c / prof.slices >= need - 1e-9:
            return q
    return len(prof.compute) - 1


@dataclass
class MigResult:
    strategy: str
    seed: int
    curve: F64  # compute slices in use, % of all slices, per arrived bucket
    at_130: float
    failed: dict[str, int]
    seconds: float
    final: float  # slices in use after the last arrival, %


class MigCluster:
    def __init__(self, nodes: Nodes, prof: Profiles) -> None:
        g = max(nodes.max_gpus, 1)
        self.nodes, self.prof = nodes, prof
        self.cpu, self.mem = nodes.cpu.copy(), nodes.mem.copy()
        self.valid = np.arange(g)[None, :] < nodes.gpus[:, None]
        full = (1 << prof.slots) - 1
        self.mask = np.where(self.valid, 0, full).astype(np.int64)  # padding looks fully used
        self.used = np.where(self.valid, 0, prof.slices).astype(np.int64)
        self.total_slices = int(nodes.gpus.sum()) * prof.slices

    def empty(self) -> npt.NDArray[np.bool_]:
        """[N, G]: GPUs with nothing on them."""
        return np.asarray((self.mask == 0) & (self.used == 0) & self.valid, dtype=np.bool_)

    def copy(self) -> MigCluster:
        out = MigCluster.__new__(MigCluster)
        out.__dict__.update(self.__dict__)
        out.cpu, out.mem, out.mask, out.used = self.cpu.copy(), self.mem.copy(), self.mask.copy(), self.used.copy()
        return out

    def slices_in_use(self) -> int:
        return int(self.used[self.valid].sum())

    def options(self, q: int) -> npt.NDArray[np.bool_]:
        """[N, G, K]: placement k of profile q fits on GPU g of node n."""
        pm = np.array(self.prof.masks[q], dtype=np.int64)
        free_mem = (self.mask[:, :, None] & pm[None, None, :]) == 0
        room = (self.used + self.prof.compute[q] <= self.prof.slices)[:, :, None]
        return np.asarray(free_mem & room & self.valid[:, :, None], dtype=np.bool_)

    def check(self) -> None:
        assert (self.cpu >= 0).all() and (self.mem >= 0).all(), "cpu/memory over-allocated"
        assert ((self.used >= 0) & (self.used <= self.prof.slices)).all(), "compute slices over-allocated"


@dataclass
class Learned:
    """What ``online`` knows from the arrivals so far: the profile mix and CPU/memory per slice."""

    prof: Profiles
    headroom: float = HEADROOM
    table: F64 = field(init=False)
    seen: Counter[int] = field(default_factory=Counter)
    cpu: int = 0  # CPU milli, memory MiB and compute slices of the GPU pods seen
    mem: int = 0
    slices: int = 0

    def __post_init__(self) -> None:
        self.table = np.zeros((1 << self.prof.slots, self.prof.slices + 1))

    def observe(self, arr: Pods, i: int, q: int) -> None:
        if q == -2:
            return
        self.seen[q] += 1
        self.cpu += int(arr.cpu[i])
        self.mem += int(arr.mem[i])
        self.slices += slices_of(self.prof, q, int(arr.num_gpu[i]))
        n = sum(self.seen.values())
        if n & (n - 1) == 0:  # relearn the mix at 1, 2, 4, 8, ... arrivals
            w = np.array([self.seen[k] for k in range(len(self.prof.compute))] + [self.seen[WHOLE]], dtype=np.float64)
            self.table = _frag_table(self.prof, w / w.sum())

    def shortfall(self, free_slices: F64 | I64, cpu: I64, mem: I64) -> F64:
        """Free slices the node's CPU or memory could no longer serve at the learned per-slice needs."""
        if not self.slices:
            return np.zeros(len(cpu))
        by_cpu = free_slices - cpu * (self.slices / max(self.cpu, 1))
        by_mem = free_slices - mem * (self.slices / max(self.mem, 1))
        return np.asarray(np.maximum(0.0, np.maximum(by_cpu, by_mem)), dtype=np.float64)


def slices_of(prof: Profiles, q: int, num: int) -> int:
    """Compute slices a pod of profile ``q`` takes (0 for CPU-only pods)."""
    if q >= 0:
        return int(prof.compute[q])
    return prof.slices * num if q == WHOLE else 0


def _frag_table(prof: Profiles, weights: F64) -> F64:
    """frag[mask, used]: free slices the profile mix can no longer use on a GPU in that state."""
    n_masks, s = 1 << prof.slots, prof.slices
    out = np.zeros((n_masks, s + 1))
    for m in range(n_masks):
        for u in range(s + 1):
            lost = 0.0
            for q, w in enumerate(weights[:-1]):
                ok = u + prof.compute[q] <= s and any(m & pm == 0 for pm in prof.masks[q])
                lost += 0.0 if ok else w * (s - u)
            ok_whole = m == 0 and u == 0
            lost += 0.0 if ok_whole else weights[-1] * (s - u)
            out[m, u] = lost
    return out


def replay_mig(
    nodes: Nodes,
    pods: Pods,
    strategy: str,
    seed: int,
    target: float = 1.3,
    batch: MigBatchConfig | None = None,
    headroom: float | None = None,
) -> MigResult:
    if strategy not in ("first-fit", "online", "batch"):
        raise ValueError(f"the MIG variant has no strategy {strategy!r}")
    prof = h100_profiles()
    order = arrival_order(pods, nodes.total_gpu_milli, seed, target)
    arr = pods.take(order)
    cl = MigCluster(nodes, prof)
    rank = np.argsort(np.random.default_rng(seed + 7919).permutation(nodes.count))
    learned = Learned(prof, HEADROOM if headroom is None else headroom)
    n = arr.count
    arrived, inuse = np.zeros(n), np.zeros(n)
    failed: Counter[str] = Counter()
    kinds = arr.kind()
    qs = [profile_of(int(arr.milli[i]), int(arr.num_gpu[i]), prof) for i in range(n)]
    decide = _batch_decider(cl, arr, qs, rank, learned, batch) if strategy == "batch" else None
    total = 0
    start = time.perf_counter()
    for i in range(n):
        total += int(arr.gpu_request[i])
        q = qs[i]
        if strategy != "first-fit":
            learned.observe(arr, i, q)
        choice = decide(i) if decide is not None else choose(cl, arr, i, q, strategy, rank, learned)
        if choice is None:
            failed[str(kinds[i])] += 1
        else:
            apply(cl, arr, i, q, choice)
        arrived[i], inuse[i] = total, cl.slices_in_use()
    cl.check()
    pct = arrived / nodes.total_gpu_milli * 100
    curve = bucket_means(pct, np.round(inuse / cl.total_slices * 100, 2))
    final = cl.slices_in_use() / cl.total_slices * 100
    return MigResult(strategy, seed, curve, float(curve[130]), dict(failed), time.perf_counter() - start, final)


@dataclass(frozen=True)
class Choice:
    """Where one pod goes: a node, its GPUs, and the placement index of its MIG profile."""

    node: int
    gpus: tuple[int, ...] = ()  # empty for CPU-only pods
    k: int = WHOLE  # placement index for MIG profiles; WHOLE for whole GPUs and CPU-only pods


def _batch_decider(
    cl: MigCluster, arr: Pods, qs: list[int], rank: I64, learned: Learned, config: MigBatchConfig | None
) -> Callable[[int], Choice | None]:
    """``batch``'s choice for each arrival: its window is solved when its first pod arrives."""
    from gpupolicy.solver.simulate.mig_batch import MigBatchConfig, solve_window

    cfg = config or MigBatchConfig()
    decided: dict[int, Choice | None] = {}

    def decide(i: int) -> Choice | None:
        nonlocal decided
        if i not in decided:
            decided = solve_window(cl, arr, i, qs[i : i + cfg.window], rank, learned, cfg)
        return decided.pop(i)

    return decide


def node_ok(cl: MigCluster, arr: Pods, i: int, q: int) -> npt.NDArray[np.bool_]:
    ok = (cl.cpu >= arr.cpu[i]) & (cl.mem >= arr.mem[i])
    return np.asarray(ok & (cl.nodes.gpus > 0) if q != -2 else ok, dtype=np.bool_)


def choose(cl: MigCluster, arr: Pods, i: int, q: int, strategy: str, rank: I64, learned: Learned) -> Choice | None:
    """The strategy's choice for pod ``i`` (profile ``q``), or None when nothing fits."""
    fit = node_ok(cl, arr, i, q)
    if q == -2:
        nodes = np.flatnonzero(fit)
        if len(nodes) == 0:
            return None
        if strategy == "first-fit":
            return Choice(int(nodes[0]))
        # CPU-only: where CPU and memory most exceed what the node's free slices will need
        growth = _shortfall_growth(cl, arr, i, 0, nodes, learned)
        return Choice(int(nodes[np.lexsort((rank[nodes], np.round(growth, 6)))[0]]))
    if q == WHOLE:
        empty = cl.empty()
        nodes = np.flatnonzero(fit & (empty.sum(axis=1) >= arr.num_gpu[i]))
        if len(nodes) == 0:
            return None
        if strategy == "first-fit":
            node = int(nodes[0])
        else:  # least headroom lost, then nodes where fewer empty GPUs are left, then node order
            left = empty[nodes].sum(axis=1) - arr.num_gpu[i]
            growth = _shortfall_growth(cl, arr, i, slices_of(cl.prof, q, int(arr.num_gpu[i])), nodes, learned)
            node = int(nodes[np.lexsort((rank[nodes], left, np.round(learned.headroom * growth, 6)))[0]])
        return Choice(node, tuple(int(g) for g in np.flatnonzero(empty[node])[: int(arr.num_gpu[i])]))
    opts = cl.options(q) & fit[:, None, None]
    hits = np.argwhere(opts)  # rows (node, gpu, placement) in device order
    if len(hits) == 0:
        return None
    if strategy == "first-fit":
        node, gpu, k = (int(x) for x in hits[0])
    else:
        pm = np.array(cl.prof.masks[q], dtype=np.int64)
        old_m, old_u = cl.mask[hits[:, 0], hits[:, 1]], cl.used[hits[:, 0], hits[:, 1]]
        new_m, new_u = old_m | pm[hits[:, 2]], old_u + cl.prof.compute[q]
        delta = learned.table[new_m, new_u] - learned.table[old_m, old_u]
        growth = _shortfall_growth(cl, arr, i, int(cl.prof.compute[q]), hits[:, 0], learned)
        score = np.round(delta + learned.headroom * growth, 6)
        key = np.lexsort((hits[:, 2], hits[:, 1], rank[hits[:, 0]], cl.prof.slices - new_u, score))
        node, gpu, k = (int(x) for x in hits[key[0]])
    return Choice(node, (gpu,), k)


def _shortfall_growth(cl: MigCluster, arr: Pods, i: int, slices: int, nodes: I64, learned: Learned) -> F64:
    """How much placing pod ``i`` (taking ``slices``) on each of ``nodes`` grows its shortfall."""
    free = ((cl.prof.slices - cl.used[nodes]) * cl.valid[nodes]).sum(axis=1)
    before = learned.shortfall(free, cl.cpu[nodes], cl.mem[nodes])
    after = learned.shortfall(free - slices, cl.cpu[nodes] - arr.cpu[i], cl.mem[nodes] - arr.mem[i])
    return np.asarray(after - before, dtype=np.float64)


def apply(cl: MigCluster, arr: Pods, i: int, q: int, choice: Choice) -> None:
    """Commit a choice; raises ValueError if it does not fit (the replay's own check)."""
    n = choice.node
    if cl.cpu[n] < arr.cpu[i] or cl.mem[n] < arr.mem[i]:
        raise ValueError(f"pod {i}: not enough CPU or memory on node {n}")
    if q >= 0:
        (g,) = choice.gpus
        pm, c = cl.prof.masks[q][choice.k], int(cl.prof.compute[q])
        if cl.mask[n, g] & pm or cl.used[n, g] + c > cl.prof.slices or not cl.valid[n, g]:
            raise ValueError(f"pod {i}: {cl.prof.names[q]} placement {choice.k} does not fit GPU {g} of node {n}")
        cl.mask[n, g] |= pm
        cl.used[n, g] += c
    elif q == WHOLE:
        gpus = np.array(choice.gpus, dtype=np.int64)
        if len(set(choice.gpus)) != int(arr.num_gpu[i]) or not cl.empty()[n, gpus].all():
            raise ValueError(f"pod {i}: GPUs {choice.gpus} of node {n} are not {int(arr.num_gpu[i])} empty GPUs")
        cl.mask[n, gpus] = (1 << cl.prof.slots) - 1
        cl.used[n, gpus] = cl.prof.slices
    cl.cpu[n] -= arr.cpu[i]
    cl.mem[n] -= arr.mem[i]


def remove(cl: MigCluster, arr: Pods, i: int, q: int, choice: Choice) -> None:
    """Undo :func:`apply` (the pod departed: its MIG instance is destroyed); raises ValueError if the
    instance is not there."""
    n = choice.node
    if q >= 0:
        (g,) = choice.gpus
        pm, c = cl.prof.masks[q][choice.k], int(cl.prof.compute[q])
        if cl.mask[n, g] & pm != pm or cl.used[n, g] < c:
            raise ValueError(f"pod {i}: no {cl.prof.names[q]} instance at placement {choice.k} of GPU {g} of node {n}")
        cl.mask[n, g] &= ~pm
        cl.used[n, g] -= c
    elif q == WHOLE:
        gpus = np.array(choice.gpus, dtype=np.int64)
        cl.mask[n, gpus] = 0
        cl.used[n, gpus] = 0
    cl.cpu[n] += arr.cpu[i]
    cl.mem[n] += arr.mem[i]
