"""Fixtures of the kubelet plugin's tests."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest


@pytest.fixture
def executor() -> Iterator[ThreadPoolExecutor]:
    """The thread pool a ``LoopPreparer`` hands its blocking steps to."""
    with ThreadPoolExecutor(8) as pool:
        yield pool
