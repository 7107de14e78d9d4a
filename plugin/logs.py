"""Logging for the services (``plugin run``, ``controller run``): stdlib ``logging``, one handler on stderr.

``setup(format="json")`` writes one JSON object per line: ``ts`` (RFC 3339 UTC, milliseconds), ``level``,
``component`` (which program), ``logger``, ``msg``, then the fields passed with ``extra=`` (and ``exc`` with the
traceback when there is one)::

    log.info("placed", extra={"unit": key, "claims": 2})
    {"ts": "2025-01-02T03:04:05.678Z", "level": "info", "component": "gpupolicy-controller",
     "logger": "gpupolicy.plugin.controller.loop", "msg": "placed", "unit": "ns/pod", "claims": 2}

``setup(format="text")`` writes the same as ``ts level logger: msg key=value ...`` for people at a terminal.
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Any, TextIO

from gpupolicy.plugin.timefmt import log_time

FORMATS = ("json", "text")
LEVELS = ("debug", "info", "warning", "error")
HEAD = ("ts", "level", "component", "logger", "msg")
# What every LogRecord has; anything else on a record came in through ``extra=``.
_STANDARD = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


def fields(record: logging.LogRecord) -> dict[str, Any]:
    """The structured fields a call passed with ``extra=``, in the order it gave them."""
    return {k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")}


class JsonFormatter(logging.Formatter):
    def __init__(self, component: str) -> None:
        super().__init__()
        self.component = component

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": log_time(record.created),
            "level": record.levelname.lower(),
            "component": self.component,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in fields(record).items():
            out.setdefault(key, value)
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        return json.dumps(out, default=str)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = f"{log_time(record.created)} {record.levelname.lower()} {record.name}: {record.getMessage()}"
        for key, value in fields(record).items():
            line += f" {key}={_bare(str(value))}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        if record.stack_info:
            line += "\n" + self.formatStack(record.stack_info)
        return line


def _bare(text: str) -> str:
    """``text`` as it is when it reads as one word, else quoted."""
    plain = text and not any(c.isspace() or c in '"=\\' for c in text)
    return text if plain else json.dumps(text)


def setup(format: str = "json", level: str | int = "info", *, component: str, stream: TextIO | None = None) -> None:
    """Send every logger's records at ``level`` and above to ``stream`` (stderr) in ``format``; replaces the
    root logger's handlers, so calling it again (tests) does not log twice."""
    if format not in FORMATS:
        raise ValueError(f"log format must be one of {', '.join(FORMATS)}, not {format!r}")
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter(component) if format == "json" else TextFormatter())
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper() if isinstance(level, str) else level)
