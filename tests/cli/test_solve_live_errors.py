"""``gpupolicy solve --kubeconfig`` against a stand-in API server (plain HTTP on loopback): bad kubeconfigs, an
unreachable or refusing server give one diagnostic and exit 1, never a traceback; a served cluster is read the way
the real one is (allocations fixed, claims of unscheduled pods placed, templates resolved) and only read."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, ClassVar

import pytest
import yaml

from gpupolicy.plugin.cli.main import main
from tests.fakes.http import serving
from tests.fakes.kubeconfig import write_kubeconfig

ROOT = Path(__file__).resolve().parents[2]
INVENTORY = list(yaml.safe_load_all((ROOT / "tests" / "solver" / "cases" / "inventory.yaml").read_text()))
Obj = dict[str, Any]
Served = tuple[str, list[tuple[str, str]]]


def claim(name: str, *, allocated_on: tuple[str, str] | None = None) -> Obj:
    obj: Obj = {
        "apiVersion": "resource.k8s.io/v1",
        "kind": "ResourceClaim",
        "metadata": {"name": name, "namespace": "team", "uid": f"uid-{name}", "managedFields": [{"manager": "x"}]},
        "spec": {"devices": {"requests": [{"name": "gpu", "exactly": {"deviceClassName": "gpu"}}]}},
    }
    if allocated_on:
        pool, device = allocated_on
        result = {"request": "gpu", "driver": "gpu.example.com", "pool": pool, "device": device}
        obj["status"] = {"allocation": {"devices": {"results": [result]}}}
    return obj


def pod(name: str, claims: list[Obj], *, statuses: list[Obj] | None = None, node: str | None = None) -> Obj:
    spec: Obj = {"containers": [{"name": "c", "image": "x"}], "resourceClaims": claims}
    if node:
        spec["nodeName"] = node
    return {
        "metadata": {"name": name, "namespace": "team", "creationTimestamp": f"2026-01-01T00:00:0{len(name)}Z"},
        "spec": spec,
        "status": {"phase": "Pending", "resourceClaimStatuses": statuses or []},
    }


TEMPLATE_SPEC = {"spec": {"devices": {"requests": [{"name": "gpu", "exactly": {"deviceClassName": "gpu"}}]}}}
CLUSTER: dict[str, list[Obj]] = {
    "/apis/resource.k8s.io/v1/resourceslices": [o for o in INVENTORY if o["kind"] == "ResourceSlice"],
    "/apis/resource.k8s.io/v1/deviceclasses": [o for o in INVENTORY if o["kind"] == "DeviceClass"],
    "/api/v1/nodes": [{"metadata": {"name": n, "labels": {"zone": "z1"}}} for n in ("node-a", "node-b")],
    "/apis/resource.k8s.io/v1/resourceclaims": [claim("held", allocated_on=("node-b", "gpu-0")), claim("p-gpu-x1")],
    "/api/v1/pods": [
        # its template claim was made by kube-controller-manager: read through the status, not generated again
        pod(
            "p",
            [{"name": "gpu", "resourceClaimTemplateName": "t"}],
            statuses=[{"name": "gpu", "resourceClaimName": "p-gpu-x1"}],
        ),
        # no claim made yet: generated from the template as q-gpu
        pod("q", [{"name": "gpu", "resourceClaimTemplateName": "t"}]),
        # already bound to a node: not pending
        pod("r", [{"name": "gpu", "resourceClaimTemplateName": "t"}], node="node-a"),
    ],
    "/apis/resource.k8s.io/v1/resourceclaimtemplates": [
        {"metadata": {"name": name, "namespace": "team"}, "spec": TEMPLATE_SPEC} for name in ("t", "unused")
    ],
}


class FakeApiServer(BaseHTTPRequestHandler):
    """Serves CLUSTER's lists; every request answers ``status`` when that is not 200. Subclassed per test."""

    status = 200
    requests: ClassVar[list[tuple[str, str]]] = []

    def do_GET(self) -> None:
        type(self).requests.append(("GET", self.path))
        items = CLUSTER.get(self.path.split("?")[0])
        if self.status != 200 or items is None:
            code = self.status if self.status != 200 else 404
            self._send(code, {"kind": "Status", "message": f"{self.path} is forbidden: no", "code": code})
        else:
            self._send(200, {"kind": "List", "items": items})

    def do_POST(self) -> None:  # a dry run must never get here
        type(self).requests.append(("POST", self.path))
        self._send(405, {})

    do_PUT = do_PATCH = do_DELETE = do_POST

    def _send(self, code: int, body: Obj) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def kubeconfig(tmp_path: Path, server: str) -> Path:
    return write_kubeconfig(tmp_path / "kubeconfig", server)


@pytest.fixture
def served(request: pytest.FixtureRequest) -> Iterator[tuple[str, list[tuple[str, str]]]]:
    """(server URL, the requests it got)."""
    requests: list[tuple[str, str]] = []
    handler = type("Handler", (FakeApiServer,), {"status": getattr(request, "param", 200), "requests": requests})
    with serving(handler) as url:
        yield url, requests


def solve(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["solve", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_missing_kubeconfig(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = solve(capsys, "--kubeconfig", str(tmp_path / "absent"))
    assert code == 1 and out == ""
    assert "kubeconfig_unreadable" in err and "Traceback" not in err


def test_kubeconfig_without_a_cluster(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "kubeconfig"
    path.write_text("apiVersion: v1\nkind: Config\n")
    code, _, err = solve(capsys, "--kubeconfig", str(path))
    assert code == 1
    assert f"{path}" in err and "kubeconfig_invalid" in err and "Traceback" not in err


def test_unreachable_server(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    code, out, err = solve(capsys, "--kubeconfig", str(kubeconfig(tmp_path, f"http://127.0.0.1:{port}")))
    assert code == 1 and out == ""
    assert "cluster_unreachable" in err and "cannot reach the API server" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("served", [403], indirect=True)
def test_server_refuses_to_list(served: Served, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = solve(capsys, "--kubeconfig", str(kubeconfig(tmp_path, served[0])))
    assert code == 1
    assert "cluster_api_error" in err and "403" in err and "forbidden" in err and "Traceback" not in err


def test_usage_needs_inventory_or_kubeconfig(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = solve(capsys, "--claims", "x.yaml")
    assert code == 2 and "--kubeconfig" in err


def test_served_cluster_is_read_not_written(served: Served, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url, requests = served
    args = ("--kubeconfig", str(kubeconfig(tmp_path, url)), "-o", "json", "--no-timing", "--workers", "1")
    code, out, err = solve(capsys, *args)
    assert code == 0, err
    doc = json.loads(out)
    placed = {
        c["metadata"]["name"]: (r["pool"], r["device"])
        for c in doc["claims"]
        for r in c["status"]["allocation"]["devices"]["results"]
    }
    # held keeps node-b/gpu-0; the two pending pods' claims take the two other usable GPUs (node-a/gpu-1 is tainted);
    # the bound pod r and the template nobody uses add no claims.
    assert set(placed) == {"p-gpu-x1", "q-gpu"} and doc["unplaced"] == []
    assert sorted(placed.values()) == [("node-a", "gpu-0"), ("node-b", "gpu-1")]
    assert requests and all(method == "GET" for method, _ in requests)
    assert ("GET", "/apis/resource.k8s.io/v1/resourceclaims") in requests


def test_namespace_limits_what_is_placed(served: Served, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url, _ = served
    base = ("--kubeconfig", str(kubeconfig(tmp_path, url)), "-o", "json", "--no-timing", "--workers", "1")
    code, out, err = solve(capsys, *base, "--namespace", "elsewhere")
    assert code == 0, err
    doc = json.loads(out)
    names = {c["metadata"]["name"] for c in doc["claims"]}
    assert not names & {"p-gpu-x1", "q-gpu"} and doc["unplaced"] == []


def test_namespace_needs_kubeconfig(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = solve(capsys, "--inventory", "x.yaml", "--claims", "y.yaml", "--namespace", "a")
    assert code == 2 and "--kubeconfig" in err
