"""The time columns of an openb pod list, for the timeline replay (:mod:`gpupolicy.solver.simulate.timeline`).

``creation_time``, ``scheduled_time`` and ``deletion_time`` are seconds (the openb trace counts from its
start); ``qos`` is the pod's QoS class, mapped to a scheduling priority (:data:`PRIORITY`). A pod runs
``deletion_time - scheduled_time`` once placed. A row with an empty ``scheduled_time`` never ran in the
recorded cluster (openb's ``Pending`` pods): it has no run time, so the replay leaves it out and counts it.

Parsing takes text and a file name and returns values; bad rows become located diagnostics with the
codes of :mod:`gpupolicy.solver.simulate.trace` (``csv_missing_column``, ``csv_bad_number``,
``csv_negative``, ``csv_out_of_range``) and these: ``time_missing`` (an empty creation or deletion
time), ``time_reversed`` (scheduled before creation, or deletion before scheduled), ``time_zero_duration``
(deletion at the scheduled time: a pod that never runs) and ``qos_unknown``.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from gpupolicy.policy.errors import Diagnostic, DiagnosticError, Location

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
BOOL = npt.NDArray[np.bool_]

TIME_COLUMNS = ("creation_time", "deletion_time", "scheduled_time")
MAX_TIME = 10.0**12  # seconds (30,000 years): far past any trace, small enough that sums stay exact

# QoS class -> priority (higher is scheduled first). Alibaba's LS (latency-sensitive) and Kubernetes'
# Guaranteed are the top class, Burstable next, BE / BestEffort last; a pod list without a qos column
# (or an empty cell) gets the lowest priority, 0.
PRIORITY = {"LS": 3, "Guaranteed": 3, "Burstable": 2, "BE": 1, "BestEffort": 1, "": 0}


@dataclass(frozen=True)
class Times:
    """Per row of the pod list: when it arrives, how long it runs once placed, its priority."""

    arrival: F64  # creation_time, seconds
    duration: F64  # deletion_time - scheduled_time, seconds (0 for rows left out)
    priority: I64
    qos: tuple[str, ...]
    kept: BOOL  # False: no scheduled_time, the pod never ran in the trace

    @property
    def count(self) -> int:
        return len(self.arrival)


def _time(row: dict[str, str], key: str, line: int, filename: str, errors: list[Diagnostic]) -> float | None:
    """The value of a time cell; None when the cell is empty (the caller decides whether that is an error)."""
    raw = (row.get(key) or "").strip()
    if not raw:
        return None
    where = Location(filename, line, 1, key)
    try:
        value = float(raw)
    except ValueError:
        errors.append(Diagnostic("csv_bad_number", f"{key}={raw!r} is not a number of seconds", where))
        return 0.0
    if not math.isfinite(value) or value > MAX_TIME:
        errors.append(Diagnostic("csv_out_of_range", f"{key}={raw} is not a time in [0, {MAX_TIME:.0e}] s", where))
        return 0.0
    if value < 0:
        errors.append(Diagnostic("csv_negative", f"{key}={raw} must not be negative", where))
        return 0.0
    return value


def _check_row(
    row: dict[str, str], line: int, filename: str, errors: list[Diagnostic]
) -> tuple[float, float, bool, str]:
    """(arrival, duration, kept, qos) of one row; problems go to ``errors``."""
    before = len(errors)
    created = _time(row, "creation_time", line, filename, errors)
    deleted = _time(row, "deletion_time", line, filename, errors)
    scheduled = _time(row, "scheduled_time", line, filename, errors)
    qos = (row.get("qos") or "").strip()
    if qos not in PRIORITY:
        known = ", ".join(k for k in PRIORITY if k)
        errors.append(
            Diagnostic("qos_unknown", f"qos={qos!r} is not one of {known}", Location(filename, line, 1, "qos"))
        )
    for key, value in (("creation_time", created), ("deletion_time", deleted)):
        if value is None:
            errors.append(Diagnostic("time_missing", f"{key} is empty", Location(filename, line, 1, key)))
    if len(errors) > before or created is None or deleted is None:
        return 0.0, 0.0, False, qos
    if scheduled is None:  # never ran in the recorded cluster
        if deleted < created:
            msg = f"deletion_time {deleted:g} is before creation_time {created:g}"
            errors.append(Diagnostic("time_reversed", msg, Location(filename, line, 1, "deletion_time")))
        return created, 0.0, False, qos
    if scheduled < created:
        msg = f"scheduled_time {scheduled:g} is before creation_time {created:g}"
        errors.append(Diagnostic("time_reversed", msg, Location(filename, line, 1, "scheduled_time")))
    elif deleted < scheduled:
        msg = f"deletion_time {deleted:g} is before scheduled_time {scheduled:g}"
        errors.append(Diagnostic("time_reversed", msg, Location(filename, line, 1, "deletion_time")))
    elif deleted == scheduled:
        msg = f"deletion_time = scheduled_time = {deleted:g}: the pod runs for no time"
        errors.append(Diagnostic("time_zero_duration", msg, Location(filename, line, 1, "deletion_time")))
    return created, deleted - scheduled, True, qos


def parse_times(text: str, filename: str = "<pods>") -> Times:
    """The time columns (and ``qos``) of a pod list, one entry per row, in file order."""
    reader = csv.DictReader(io.StringIO(text))
    header = reader.fieldnames or []
    missing = [c for c in TIME_COLUMNS if c not in header]
    if missing:
        raise DiagnosticError.single(
            "csv_missing_column",
            f"missing column(s) {', '.join(missing)}: the timeline replay needs when each pod was created,"
            f" scheduled and deleted ({', '.join(TIME_COLUMNS)})",
            Location(filename, 1, 1),
        )
    errors: list[Diagnostic] = []
    arrival: list[float] = []
    duration: list[float] = []
    kept: list[bool] = []
    qos: list[str] = []
    for i, row in enumerate(reader):
        a, d, k, q = _check_row(row, i + 2, filename, errors)
        arrival.append(a)
        duration.append(d)
        kept.append(k)
        qos.append(q)
    if errors:
        raise DiagnosticError(errors)
    return Times(
        arrival=np.array(arrival, dtype=np.float64),
        duration=np.array(duration, dtype=np.float64),
        priority=np.array([PRIORITY.get(q, 0) for q in qos], dtype=np.int64),
        qos=tuple(qos),
        kept=np.array(kept, dtype=np.bool_),
    )
