"""The MIG variant: the same trace on a cluster whose GPUs are all H100-80GB with dynamic MIG.

A shared pod asks for the smallest MIG profile whose compute fraction covers its share
(1g/7, 2g/7, 3g/7, 4g/7, 7g); a whole-GPU pod takes whole, unpartitioned GPUs. A GPU's state
is its occupied memory slots (a bit mask over 8) and its compute slices in use; an instance
fits where its memory slots are free and the slices add up to at most 7 (the catalog's
placement rules). We report compute slices in use versus the total.

- ``first-fit``: the reference driver's device order: nodes in order, then GPUs, then each
  profile's placements in catalog order; the first free one.
- ``online``: the placement whose GPU loses least "placeability" of the profile mix seen so
  far (free slices a profile can no longer use, weighted by how often it arrived), ties to
  the tightest GPU and a fixed node order.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from policy.catalog import MigProfile, get_model
from solver.simulate.protocol import arrival_order
from solver.simulate.replay import bucket_means
from solver.simulate.trace import MILLI, Nodes, Pods

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
WHOLE = -1


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


def replay_mig(nodes: Nodes, pods: Pods, strategy: str, seed: int, target: float = 1.3) -> MigResult:
    prof = h100_profiles()
    order = arrival_order(pods, nodes.total_gpu_milli, seed, target)
    arr = pods.take(order)
    cl = MigCluster(nodes, prof)
    rank = np.argsort(np.random.default_rng(seed + 7919).permutation(nodes.count))
    seen: Counter[int] = Counter()
    table = np.zeros((1 << prof.slots, prof.slices + 1))
    n = arr.count
    arrived, inuse = np.zeros(n), np.zeros(n)
    failed: Counter[str] = Counter()
    kinds = arr.kind()
    total = 0
    start = time.perf_counter()
    for i in range(n):
        total += int(arr.gpu_request[i])
        q = profile_of(int(arr.milli[i]), int(arr.num_gpu[i]), prof)
        if q != -2:
            seen[q] += 1
            if strategy == "online" and (sum(seen.values()) & (sum(seen.values()) - 1)) == 0:
                w = np.array([seen[k] for k in range(len(prof.compute))] + [seen[WHOLE]], dtype=np.float64)
                table = _frag_table(prof, w / w.sum())
        if not _place(cl, arr, i, q, strategy, rank, table):
            failed[str(kinds[i])] += 1
        arrived[i], inuse[i] = total, cl.slices_in_use()
    cl.check()
    pct = arrived / nodes.total_gpu_milli * 100
    curve = bucket_means(pct, np.round(inuse / cl.total_slices * 100, 2))
    final = cl.slices_in_use() / cl.total_slices * 100
    return MigResult(strategy, seed, curve, float(curve[130]), dict(failed), time.perf_counter() - start, final)


def _place(cl: MigCluster, arr: Pods, i: int, q: int, strategy: str, rank: I64, table: F64) -> bool:
    node_ok = ((cl.cpu >= arr.cpu[i]) & (cl.mem >= arr.mem[i])) & (cl.nodes.gpus > 0 if q != -2 else True)
    if q == -2:
        nodes = np.flatnonzero(node_ok)
        if len(nodes) == 0:
            return False
        node = int(nodes[0] if strategy == "first-fit" else nodes[np.argmin(rank[nodes])])
        _commit_cpu(cl, arr, i, node)
        return True
    if q == WHOLE:
        empty = (cl.mask == 0) & (cl.used == 0) & cl.valid
        ok = node_ok & (empty.sum(axis=1) >= arr.num_gpu[i])
        nodes = np.flatnonzero(ok)
        if len(nodes) == 0:
            return False
        if strategy == "first-fit":
            node = int(nodes[0])
        else:  # prefer nodes where fewer empty GPUs are left, then node order
            left = empty[nodes].sum(axis=1) - arr.num_gpu[i]
            node = int(nodes[np.lexsort((rank[nodes], left))[0]])
        gpus = np.flatnonzero(empty[node])[: int(arr.num_gpu[i])]
        cl.mask[node, gpus] = (1 << cl.prof.slots) - 1
        cl.used[node, gpus] = cl.prof.slices
        _commit_cpu(cl, arr, i, node)
        return True
    opts = cl.options(q) & node_ok[:, None, None]
    hits = np.argwhere(opts)  # rows (node, gpu, placement) in device order
    if len(hits) == 0:
        return False
    if strategy == "first-fit":
        node, gpu, k = (int(x) for x in hits[0])
    else:
        pm = np.array(cl.prof.masks[q], dtype=np.int64)
        old_m, old_u = cl.mask[hits[:, 0], hits[:, 1]], cl.used[hits[:, 0], hits[:, 1]]
        new_m, new_u = old_m | pm[hits[:, 2]], old_u + cl.prof.compute[q]
        delta = table[new_m, new_u] - table[old_m, old_u]
        key = np.lexsort((hits[:, 2], hits[:, 1], rank[hits[:, 0]], cl.prof.slices - new_u, np.round(delta, 6)))
        node, gpu, k = (int(x) for x in hits[key[0]])
    cl.mask[node, gpu] |= cl.prof.masks[q][k]
    cl.used[node, gpu] += int(cl.prof.compute[q])
    _commit_cpu(cl, arr, i, node)
    return True


def _commit_cpu(cl: MigCluster, arr: Pods, i: int, node: int) -> None:
    cl.cpu[node] -= arr.cpu[i]
    cl.mem[node] -= arr.mem[i]
