"""The services' logging (``gpupolicy.plugin.logs.setup``) into a buffer for a test, the root logger restored after."""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Iterator

from gpupolicy.plugin import logs


@contextlib.contextmanager
def captured(format: str = "json", component: str = "gpupolicy-test", level: str = "info") -> Iterator[io.StringIO]:
    root = logging.getLogger()
    handlers, old_level = root.handlers[:], root.level
    stream = io.StringIO()
    logs.setup(format, level, component=component, stream=stream)
    try:
        yield stream
    finally:
        root.handlers[:] = handlers
        root.setLevel(old_level)
