"""A kubeconfig for a test's API server: one cluster, one user with a bearer token, one current context."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def write_kubeconfig(path: Path, server: str, *, token: str = "t", ca: Path | None = None) -> Path:
    """Write it to ``path`` (JSON, which every YAML reader reads) and return ``path``."""
    cluster: dict[str, Any] = {"server": server}
    if ca is not None:
        cluster["certificate-authority"] = str(ca)
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": cluster}],
        "users": [{"name": "u", "user": {"token": token}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "c",
    }
    path.write_text(json.dumps(config), encoding="utf-8")
    return path
