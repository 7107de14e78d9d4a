"""Stranded MIG capacity: the part of a GPU that no further MIG device can use (see docs/solver.md).

Per dynamic-MIG GPU (a counter set with ``memory-slice-<i>`` counters) that the pending claims may touch,
with ``S`` memory slots and ``C`` compute slices (``mig_slices``):

- compute slices left idle once every memory slot is held: two 3g.40gb on an H100 hold slots 0-7 and 6 of
  7 slices, so one slice is stranded (a 4g.40gb + 3g.40gb pair would use it);
- memory slots left idle once every compute slice is held: seven 1g.10gb hold 7 of 8 slots.

Slot use is exact (a ``memory-slice-<i>`` counter admits one device), so with ``held(d)`` 1 for a device
held by an existing allocation, ``used[d]`` for one a pending claim may take, and ``K`` large enough::

    K · mem_full     >= Σ slots(d) · held(d) − (S − 1)
    K · compute_full >= Σ cs(d) · held(d) − (C − 1)
    stranded         >= (C − Σ cs(d) · held(d)) − C · (1 − mem_full)
    stranded         >= (S − Σ slots(d) · held(d)) − S · (1 − compute_full)

``stranded`` (0 … max(C, S)) is minimized by the objective, so it is exactly the capacity stranded: only one
of the two right-hand sides can be positive, and only when the GPU is full in the other dimension.
"""

from __future__ import annotations

from collections import defaultdict

from ortools.sat.python import cp_model

from gpupolicy.solver.mig_slices import device_compute, gpu_compute_total
from gpupolicy.solver.model.variables import Variables
from gpupolicy.solver.problem import DeviceIndex

GpuKey = tuple[str, str, str]  # driver, pool, counter set


def stranded_mig(v: Variables) -> tuple[list[cp_model.IntVar], int]:
    """One ``stranded`` variable per touched dynamic-MIG GPU, and the sum of their upper bounds."""
    gpus: dict[GpuKey, list[DeviceIndex]] = defaultdict(list)
    for d, device in enumerate(v.problem.devices):
        if device.memory_slices:
            gpus[(device.driver, device.pool, device.memory_slices[0][0])].append(DeviceIndex(d))
    out: list[cp_model.IntVar] = []
    high = 0
    for key, members in sorted(gpus.items()):
        if not any(d in v.used for d in members):
            continue  # no pending claim can change this GPU: its stranded part is a constant
        found = _stranded_gpu(v, key, members)
        if found is not None:
            out.append(found[0])
            high += found[1]
    return out, high


def _held(v: Variables, d: DeviceIndex) -> cp_model.LinearExprT | None:
    """1 when an existing allocation holds ``d``, its ``used`` flag when a pending claim may take it."""
    if v.usage.in_use(d):
        return 1
    return v.used.get(d)


def _stranded_gpu(v: Variables, key: GpuKey, members: list[DeviceIndex]) -> tuple[cp_model.IntVar, int] | None:
    devices = v.problem.devices
    total = gpu_compute_total([devices[d].attributes for d in members])
    if not total:
        return None  # no MIG profiles: nothing to count compute slices by
    counter_set = v.problem.counter_index.get(key)
    declared = [n for n in (counter_set.counters if counter_set else {}) if n.startswith("memory-slice-")]
    seen = [slot for d in members for _, slot in devices[d].memory_slices]
    slots = max(len(declared), max(seen) + 1)
    slot_terms: list[tuple[int, cp_model.LinearExprT]] = []
    compute_terms: list[tuple[int, cp_model.LinearExprT]] = []
    for d in members:
        held = _held(v, d)
        if held is None:
            continue
        slot_terms.append((len(devices[d].memory_slices), held))
        compute_terms.append((device_compute(devices[d].attributes, total), held))
    m = v.model
    name = "/".join(key)
    slots_used = sum(n * x for n, x in slot_terms)
    compute_used = sum(n * x for n, x in compute_terms)
    mem_full = m.new_bool_var(f"mem_full[{name}]")
    compute_full = m.new_bool_var(f"compute_full[{name}]")
    # K: the most the sum can exceed the threshold, so that one flag always suffices.
    m.add(max(1, sum(n for n, _ in slot_terms) - slots + 1) * mem_full >= slots_used - (slots - 1))
    m.add(max(1, sum(n for n, _ in compute_terms) - total + 1) * compute_full >= compute_used - (total - 1))
    high = max(total, slots)
    stranded = m.new_int_var(0, high, f"stranded[{name}]")
    m.add(stranded >= total - compute_used - total * (1 - mem_full))
    m.add(stranded >= slots - slots_used - slots * (1 - compute_full))
    return stranded, high
