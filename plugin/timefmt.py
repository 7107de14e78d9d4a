"""Timestamps as text, one function per format, all in UTC.

Three formats, not interchangeable: the API server parses ``metav1.Time`` (whole seconds) and ``metav1.MicroTime``
(microseconds, Events' ``eventTime`` and Leases' ``acquireTime``/``renewTime``) strictly; log lines carry
milliseconds (RFC 3339, as klog's JSON and most log pipelines expect).
"""

from __future__ import annotations

import datetime
import time

_SECONDS = "%Y-%m-%dT%H:%M:%S"


def _utc(epoch: float | None) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(time.time() if epoch is None else epoch, datetime.UTC)


def kube_time(epoch: float | None = None) -> str:
    """``metav1.Time``: ``2025-01-02T03:04:05Z`` (now when ``epoch`` is None)."""
    return _utc(epoch).strftime(_SECONDS) + "Z"


def kube_micro_time(epoch: float | None = None) -> str:
    """``metav1.MicroTime``: ``2025-01-02T03:04:05.678901Z``."""
    return _utc(epoch).strftime(_SECONDS + ".%fZ")


def log_time(epoch: float | None = None) -> str:
    """A log line's ``ts``: RFC 3339 with milliseconds, ``2025-01-02T03:04:05.678Z``."""
    moment = _utc(epoch)
    return f"{moment.strftime(_SECONDS)}.{moment.microsecond // 1000:03d}Z"
