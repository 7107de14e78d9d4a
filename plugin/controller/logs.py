"""Structured logs: one JSON object per line (time, level, msg, then the event's fields), on stderr."""

from __future__ import annotations

import json
import sys
import threading
import time
from typing import Any, TextIO


class JsonLog:
    def __init__(self, stream: TextIO | None = None, component: str = "gpupolicy-controller") -> None:
        self.stream = stream or sys.stderr
        self.component = component
        self._lock = threading.Lock()

    def __call__(self, level: str, msg: str, **fields: Any) -> None:
        now = time.time()
        record = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}Z",
            "level": level,
            "component": self.component,
            "msg": msg,
            **fields,
        }
        with self._lock:
            self.stream.write(json.dumps(record, default=str, sort_keys=False) + "\n")
            self.stream.flush()
