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

from solver.simulate.protocol import PodTypes

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
    return np.where(ok, small, idle[:, None])


def fgd(cpu_left: I64, bits: I64, free: I64, types: PodTypes) -> F64:
    """FGD fragmentation of each state (``[M]``, GPU milli)."""
    if len(cpu_left) == 0:
        return np.zeros(0)
    return per_type(cpu_left, bits, free, types) @ types.weight


def stranded(cpu_left: I64, bits: I64, free: I64, types: PodTypes) -> F64:
    """Idle GPU milli no GPU type can use, per state."""
    gpu_types = types.milli > 0
    if not gpu_types.any() or len(cpu_left) == 0:
        return free.sum(axis=1).astype(np.float64)
    return per_type(cpu_left, bits, free, types)[:, gpu_types].min(axis=1)
