"""Fragmentation, vectorised over many node states at once.

FGD's definition (Weng et al., ATC'23, and the simulator's ``NodeGpuShareFragAmount``): for a
node and a typical pod type p, the fragment is all idle GPU milli when p cannot run there
(CPU-only type, wrong model, not enough CPU, not enough GPUs with room for p's share), and
otherwise the idle milli on the GPUs too small for p. A node's fragmentation is the
weighted sum over the typical types; the cluster's is the sum over nodes.

Ours (:func:`stranded`): idle GPU milli that *no* GPU pod type of the trace could use, the
smallest per-type fragment of each node; it does not depend on frequencies.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from gpupolicy.solver.simulate.protocol import PodTypes

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


def per_type(cpu_left: I64, bits: I64, free: I64, types: PodTypes) -> F64:
    """``[M, T]`` fragment of each state for each type (GPU milli)."""
    idle = free.sum(axis=1).astype(np.float64)
    milli = types.milli
    uniq, uidx = np.unique(np.where(milli > 0, milli, 1), return_inverse=True)
    ge = free[:, :, None] >= uniq[None, None, :]
    count = ge.sum(axis=1)[:, uidx]
    small = np.where(ge, 0, free[:, :, None]).sum(axis=1)[:, uidx].astype(np.float64)
    ok = (milli > 0)[None, :] & ((bits[:, None] & types.mask[None, :]) != 0)
    ok &= count >= types.num[None, :]
    ok &= cpu_left[:, None] >= types.cpu[None, :]
    return np.asarray(np.where(ok, small, idle[:, None]), dtype=np.float64)


def fgd(cpu_left: I64, bits: I64, free: I64, types: PodTypes) -> F64:
    """FGD fragmentation of each state (``[M]``, GPU milli)."""
    if len(cpu_left) == 0:
        return np.zeros(0)
    return np.asarray(per_type(cpu_left, bits, free, types) @ types.weight, dtype=np.float64)


def stranded(cpu_left: I64, bits: I64, free: I64, types: PodTypes) -> F64:
    """Idle GPU milli no GPU type can use, per state."""
    gpu_types = types.milli > 0
    if not gpu_types.any() or len(cpu_left) == 0:
        return np.asarray(free.sum(axis=1), dtype=np.float64)
    return np.asarray(per_type(cpu_left, bits, free, types)[:, gpu_types].min(axis=1), dtype=np.float64)


def fill(cpu_left: I64, mem_left: I64, bits: I64, free: I64, types: PodTypes, blocked_only: bool = False) -> F64:
    """Expected idle GPU milli left if the node were filled with pods of one typical type.

    For each type p: fit as many p-pods as the GPUs (shares packed per GPU, whole GPUs per
    request), the CPU and the memory allow; the fragment is the idle milli they leave. Unlike
    FGD's "can one more p fit", this sees that a node with 8 free GPUs and CPU for 3 pods
    strands 5 GPUs, and that an 810-milli share leaves 190 milli on its GPU.
    """
    if len(cpu_left) == 0:
        return np.zeros(0)
    idle = free.sum(axis=1).astype(np.float64)
    milli = np.maximum(types.milli, 1)
    per_gpu = free[:, None, :] // milli[None, :, None]  # [M, T, G]
    share = (types.num == 1) & (types.milli < 1000)
    slots_share = per_gpu.sum(axis=2)
    whole = (free == 1000).sum(axis=1)[:, None] // np.maximum(types.num, 1)[None, :]
    slots = np.where(share[None, :], slots_share, whole)
    cap_cpu = cpu_left[:, None] // np.maximum(types.cpu, 1)[None, :]
    cap_mem = mem_left[:, None] // np.maximum(types.memory(), 1)[None, :]
    k = np.minimum(slots, np.minimum(cap_cpu, cap_mem))
    k = np.where(((bits[:, None] & types.mask[None, :]) != 0) & (types.milli > 0)[None, :], k, 0)
    size = (types.milli * types.num)[None, :]
    if blocked_only:
        gpu_ok = np.where(((bits[:, None] & types.mask[None, :]) != 0) & (types.milli > 0)[None, :], slots, 0)
        return np.asarray(((gpu_ok - k) * size).astype(np.float64) @ types.weight, dtype=np.float64)
    return np.asarray((idle[:, None] - k * size) @ types.weight, dtype=np.float64)
