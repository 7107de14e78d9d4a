"""The ``-o table`` / ``-o wide`` report: per-claim rows, a per-node GPU map, a summary.

MIG GPUs are drawn as a bar of their memory slots (7 or 8), each slot showing the letter of the
claim that holds it (``.`` free), then slots held and compute slices held (``8/8 slots, 6/7 compute``:
two 3g.40gb, one slice stranded); static MIG layouts as a bar of their instances, with the compute
slices held; shared GPUs show their used fraction; whole GPUs their holder.
Letters are given in order of first appearance and explained on each node's lines.
"""

from __future__ import annotations

import string

from gpupolicy.solver.compile import Compiled
from gpupolicy.solver.problem import ClaimKey, DeviceResult, Problem
from gpupolicy.solver.report import Summary, Unit, UnitUse, gpu_units, summarize, unit_usage
from gpupolicy.solver.result import Solution

LETTERS = string.ascii_uppercase + string.ascii_lowercase + string.digits
MAX_IDLE_NODES_SHOWN = 0  # in "table" mode nodes without any allocation are counted, not drawn


def _columns(rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]


def _profile(problem: Problem, r: DeviceResult) -> str:
    device = problem.devices[r.device]
    profile = next((str(v) for k, v in device.attributes.items() if k.endswith("/profile")), "")
    if not profile:
        return "-"
    slots = [slot for _, slot in device.memory_slices]
    return f"{profile}@{min(slots)}" if slots else profile


def _share(problem: Problem, r: DeviceResult) -> str:
    if not r.consumed:
        return "-"
    device = problem.devices[r.device]
    parts = []
    for name, amount in sorted(r.consumed.items()):
        cap = device.capacity.get(name)
        if cap and cap.value:
            parts.append(f"{name.rsplit('/', 1)[-1]} {amount * 100 // cap.value}%")
    return ",".join(parts) or "-"


def claim_rows(compiled: Compiled, solution: Solution, wide: bool) -> list[str]:
    problem = compiled.problem
    header = ["CLAIM", "NODE", "DEVICES", "MIG", "SHARE"] + (["REQUESTS", "POOL"] if wide else []) + ["STATUS"]
    rows = [header]
    for claim in problem.claims:
        if claim.moving:
            continue
        placement = solution.placements.get(claim.key)
        if placement is None:
            reasons = solution.unplaced.get(claim.key, [])
            status = f"unplaced: {reasons[0].code}" if reasons else "unplaced"
            rows.append([claim.key, "-", "-", "-", "-"] + (["-", "-"] if wide else []) + [status])
            continue
        results = placement.results
        devices = ",".join(problem.devices[r.device].name for r in results)
        mig = ",".join(_profile(problem, r) for r in results)
        share = ",".join(_share(problem, r) for r in results)
        row = [
            claim.key,
            placement.node or "*",
            devices,
            mig if mig.strip("-,") else "-",
            share if share.strip("-,") else "-",
        ]
        if wide:
            pools = sorted({problem.devices[r.device].pool for r in results})
            row += [",".join(r.request for r in results), ",".join(pools)]
        rows.append([*row, "placed"])
    return _columns(rows)


def _letter(legend: dict[ClaimKey, str], key: ClaimKey) -> str:
    if key not in legend:
        legend[key] = LETTERS[len(legend)] if len(legend) < len(LETTERS) else "+"
    return legend[key]


def _unit_line(unit: Unit, use: UnitUse, legend: dict[ClaimKey, str]) -> str:
    if unit.slots:
        bar = "".join(_letter(legend, h) if h is not None else "." for h in use.slot_holders)
        held = sum(1 for h in use.slot_holders if h is not None)
        return f"{unit.name:<10} mig     |{bar}|  {held}/{unit.slots} slots{_compute(unit, use)}"
    if len(unit.devices) > 1 and not unit.shared:
        bar = "".join(_letter(legend, h) if h is not None else "." for h in use.slot_holders)
        held = sum(1 for h in use.slot_holders if h is not None)
        return f"{unit.name:<10} parts   |{bar}|  {held}/{len(unit.devices)} partitions{_compute(unit, use)}"
    if unit.shared:
        holders = "".join(_letter(legend, h) for h in use.holders)
        text = use.share_text or "0% used"
        return f"{unit.name:<10} shared  {text:<14} {len(use.holders)} share(s) {holders}".rstrip()
    if use.holders:
        return f"{unit.name:<10} gpu     |{_letter(legend, use.holders[0]) * 8}|  whole GPU"
    return f"{unit.name:<10} idle"


def _compute(unit: Unit, use: UnitUse) -> str:
    return f", {use.compute_used}/{unit.compute} compute" if unit.compute else ""


def node_map(problem: Problem, solution: Solution, wide: bool) -> list[str]:
    units = gpu_units(problem)
    usage = unit_usage(problem, solution, units)
    by_node: dict[str, list[Unit]] = {}
    for unit in units:
        by_node.setdefault(unit.node, []).append(unit)
    lines: list[str] = []
    hidden = 0
    for node, node_units in by_node.items():
        if not wide and all(usage[u.key].state == "idle" for u in node_units):
            hidden += 1
            continue
        legend: dict[ClaimKey, str] = {}
        lines.append(f"{node}:")
        for unit in node_units:
            lines.append("  " + _unit_line(unit, usage[unit.key], legend))
        if legend:
            lines.append("  " + "  ".join(f"{letter}={key}" for key, letter in legend.items()))
    if hidden:
        lines.append(f"({hidden} node(s) with only idle GPUs not shown; -o wide shows them)")
    return lines


def summary_lines(s: Summary, timing: bool = True) -> list[str]:
    optimality = "proven optimal" if s.proven_optimal else "not proven optimal"
    rows = [
        ["strategy", f"{s.strategy} ({s.status}, {optimality})"],
        ["claims placed", f"{s.placed}/{s.claims} (priority-weighted {s.weight_placed}/{s.weight_total})"],
        ["GPUs", f"{s.gpus}: {s.full} fully used, {s.partial} partly used, {s.idle} idle"],
        ["fragmentation", f"{s.fragmentation:.2f} GPU(s) idle on partly used GPUs"],
    ]
    if timing:
        rows.append(["solve time", f"{s.wall_s:.2f} s"])
    return ["  " + line for line in _columns(rows)]


def render_table(compiled: Compiled, solution: Solution, *, wide: bool, explain: bool, timing: bool = True) -> str:
    lines = claim_rows(compiled, solution, wide)
    if explain and solution.unplaced:
        lines += ["", "Why not placed:"]
        for key, reasons in sorted(solution.unplaced.items()):
            for reason in reasons:
                lines.append(f"  {key}: {reason.code}: {reason.message}")
    lines += disruption_lines(compiled.problem, solution, explain)
    lines += ["", "GPUs by node:"] + ["  " + line for line in node_map(compiled.problem, solution, wide)]
    lines += ["", "Summary:"] + summary_lines(summarize(compiled.problem, solution), timing)
    return "\n".join(lines) + "\n"


def disruption_lines(problem: Problem, solution: Solution, explain: bool) -> list[str]:
    """The preempted and moved allocations (when the solve may give some up), and why with ``explain``."""
    lines: list[str] = []
    if problem.disruption.preempt:
        rows = [["PREEMPTED", "PRIORITY", "PODS", "FOR"]]
        for key, p in sorted(solution.preempted.items()):
            rows.append([key, str(p.level), ",".join(p.pods) or "-", ",".join(p.for_) or "-"])
        lines += ["", *(_columns(rows) if len(rows) > 1 else ["PREEMPTED: none"])]
    if problem.disruption.defragment:
        rows = [["MOVED", "PODS", "FROM", "TO", "FOR"]]
        for key, m in sorted(solution.moved.items()):
            placement = solution.placements.get(key)
            to = ",".join(problem.devices[r.device].name for r in placement.results) if placement else "-"
            before = ",".join(problem.devices[r.device].name for r in m.before)
            rows.append([key, ",".join(m.pods) or "-", before, to, ",".join(m.for_) or "-"])
        lines += ["", *(_columns(rows) if len(rows) > 1 else ["MOVED: none"])]
    if explain and (solution.preempted or solution.moved):
        lines += ["", "Why these allocations are given up:"]
        for key, p in sorted(solution.preempted.items()):
            lines.append(f"  {key}: preempted: {p.why}")
        for key, m in sorted(solution.moved.items()):
            lines.append(f"  {key}: moved: {m.why}")
    return lines


def render_compare(compiled: Compiled, solutions: list[Solution], timing: bool = True) -> str:
    problem = compiled.problem
    summaries = [summarize(problem, s) for s in solutions]
    rows = [["", *[s.strategy for s in summaries]]]
    rows.append(["claims placed", *[f"{s.placed}/{s.claims}" for s in summaries]])
    rows.append(["priority placed", *[f"{s.weight_placed}/{s.weight_total}" for s in summaries]])
    rows.append(["GPUs fully used", *[str(s.full) for s in summaries]])
    rows.append(["GPUs partly used", *[str(s.partial) for s in summaries]])
    rows.append(["GPUs idle", *[str(s.idle) for s in summaries]])
    rows.append(["fragmentation", *[f"{s.fragmentation:.2f}" for s in summaries]])
    rows.append(["status", *[s.status for s in summaries]])
    if timing:
        rows.append(["solve time", *[f"{s.wall_s:.2f} s" for s in summaries]])
    claim_table = [["CLAIM", *[s.strategy for s in solutions]]]
    for claim in problem.claims:
        cells = []
        for solution in solutions:
            placement = solution.placements.get(claim.key)
            if placement is None:
                reasons = solution.unplaced.get(claim.key, [])
                cells.append(f"unplaced ({reasons[0].code})" if reasons else "unplaced")
            else:
                names = ",".join(problem.devices[r.device].name for r in placement.results)
                cells.append(f"{placement.node or '*'}:{names}")
        claim_table.append([claim.key, *cells])
    return "\n".join(_columns(claim_table) + ["", "Summary:"] + ["  " + x for x in _columns(rows)]) + "\n"
