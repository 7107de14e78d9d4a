"""``python -m tests.e2e.recordcalls FILE ARGS...``: ``gpupolicy ARGS...`` with the (method, path) of every request it
sends to the API server appended to FILE as JSON lines. Every request of gpupolicy's one Kubernetes client goes
through ``Client._send`` (lists, gets, writes and watches alike), so the file is what the process asked for, which
the chart tests turn into RBAC permissions and hold against what the chart grants."""

from __future__ import annotations

import json
import sys
import threading
from pathlib import Path
from typing import Any

from gpupolicy.plugin.cli.main import main as gpupolicy
from gpupolicy.plugin.kube import client


def record(path: Path) -> None:
    lock = threading.Lock()
    send = client.Client._send

    def recorded(self: client.Client, method: str, resource_path: str, data: bytes | None, **options: Any) -> Any:
        with lock, path.open("a", encoding="utf-8") as out:
            out.write(json.dumps([method, resource_path]) + "\n")
        return send(self, method, resource_path, data, **options)

    client.Client._send = recorded  # type: ignore[method-assign]


def recorded_requests(path: Path) -> list[tuple[str, str]]:
    if not path.exists():
        return []
    return [(m, p) for m, p in (json.loads(line) for line in path.read_text(encoding="utf-8").splitlines())]


if __name__ == "__main__":
    record(Path(sys.argv[1]))
    sys.exit(gpupolicy(sys.argv[2:]))
