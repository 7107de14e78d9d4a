"""The reference data shipped in ``data/`` (and the MIG table in the package): intact, readable by the simulator,
consistent with the published FGD results, and found without a ``../shared`` folder beside the clone."""

from __future__ import annotations

import csv
import hashlib
import importlib.util
import json
import statistics
from pathlib import Path
from types import ModuleType

import pytest

from gpupolicy.plugin.cli.main import main
from gpupolicy.solver.simulate.trace import parse_nodes, parse_pods

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "data"
TRACES = {"default": 8152, "cpu050": 7439, "gpushare40": 8152, "gpuspec10": 8152, "multigpu20": 8324}
POLICIES = ("01-Random", "02-DotProd", "03-GpuClustering", "04-GpuPacking", "05-BestFit", "06-FGD")


def _datafiles() -> ModuleType:
    spec = importlib.util.spec_from_file_location("datafiles", REPO / "benchmarks" / "datafiles.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _sums() -> dict[str, str]:
    lines = (DATA / "SHA256SUMS").read_text(encoding="utf-8").splitlines()
    return {name: digest for digest, name in (line.split("  ", 1) for line in lines)}


def test_every_shipped_file_is_pinned_and_intact() -> None:
    """Each data file is listed in SHA256SUMS with its digest, and nothing under data/ is unlisted; where
    ../shared/data is beside the clone, its copy of the file (if any) is the same bytes."""
    sums = _sums()
    on_disk = {str(p.relative_to(DATA)) for p in DATA.rglob("*") if p.is_file()} - {"README.md", "SHA256SUMS"}
    assert on_disk == {name for name in sums if not name.startswith("../")}
    shared = REPO.parent / "shared" / "data"
    for name, digest in sums.items():
        body = (DATA / name).read_bytes()
        assert hashlib.sha256(body).hexdigest() == digest, f"data/{name} differs from its pinned digest"
        twin = shared / (Path(name).name if name.startswith("../") else name)
        if twin.is_file():
            assert twin.read_bytes() == body, f"data/{name} is not the same as {twin}"


def test_the_readme_and_notice_name_every_shipped_file() -> None:
    readme = (DATA / "README.md").read_text(encoding="utf-8")
    notice = (REPO / "NOTICE").read_text(encoding="utf-8")
    for name in _sums():
        folder = Path(name).parent.name
        assert folder in readme and f"{folder}/" in notice, name
    assert "Apache" in notice and "hkust-adsl/kubernetes-scheduler-simulator" in notice


def test_the_shipped_openb_traces_parse_in_full() -> None:
    nodes = parse_nodes((DATA / "openb" / "openb_node_list_gpu_node.csv").read_text(), "openb_node_list_gpu_node.csv")
    assert nodes.count == 1213 and int(nodes.gpus.sum()) == 6212
    for trace, count in TRACES.items():
        pods = parse_pods((DATA / "openb" / f"openb_pod_list_{trace}.csv").read_text(), nodes.models, trace)
        assert pods.count == count, trace


def test_the_published_results_cover_every_shipped_trace_policy_and_seed() -> None:
    with (DATA / "fgd" / "fgd_allo.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    got = {(r["workload"].removeprefix("openb_pod_list_"), r["sc_policy"], int(r["seed"])) for r in rows}
    assert got == {(t, p, s) for t in TRACES for p in POLICIES for s in range(42, 52)}
    assert all(r["total_gpus"] == "6212" and 85.0 < float(r["130"]) <= 100.0 for r in rows)


@pytest.mark.slow
def test_simulate_on_the_shipped_trace_lands_near_the_published_best_fit(capsys: pytest.CaptureFixture[str]) -> None:
    """The documented replay runs from the clone alone: best-fit on ``default`` (seed 42) within half a point
    of the simulator's published best-fit mean at 130% arrived."""
    with (DATA / "fgd" / "fgd_allo.csv").open(newline="") as handle:
        published = [
            float(r["130"])
            for r in csv.DictReader(handle)
            if r["workload"] == "openb_pod_list_default" and r["sc_policy"] == "05-BestFit"
        ]
    nodes, pods = DATA / "openb" / "openb_node_list_gpu_node.csv", DATA / "openb" / "openb_pod_list_default.csv"
    argv = ["simulate", "--nodes", str(nodes), "--pods", str(pods), "--strategy", "best-fit", "--seeds", "42"]
    assert main([*argv, "-o", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["trace"] == "default"
    assert abs(doc["allocation_at_130"] - statistics.mean(published)) < 0.5, (doc["allocation_at_130"], published)


def test_data_file_prefers_the_shipped_copy_then_the_shared_folder(tmp_path: Path) -> None:
    datafiles = _datafiles()
    shipped, shared = tmp_path / "repo" / "data", tmp_path / "shared" / "data"
    for root, text in ((shipped, "shipped"), (shared, "shared")):
        (root / "openb").mkdir(parents=True)
        (root / "openb" / "both.csv").write_text(text)
    (shared / "fgd").mkdir()
    (shared / "fgd" / "fgd_frag.csv").write_text("extra")
    roots = (shipped, shared)
    assert datafiles.data_file("openb/both.csv", roots).read_text() == "shipped"
    assert datafiles.data_file("fgd/fgd_frag.csv", roots).read_text() == "extra"


def test_a_missing_data_file_stops_with_both_places_and_its_source(tmp_path: Path) -> None:
    datafiles = _datafiles()
    roots = (tmp_path / "repo" / "data", tmp_path / "shared" / "data")
    with pytest.raises(SystemExit) as stopped:
        datafiles.data_file("openb/openb_pod_list_cpu200.csv", roots)
    message = str(stopped.value.code)
    assert message.startswith("missing data file openb/openb_pod_list_cpu200.csv: not in ")
    assert str(roots[0] / "openb/openb_pod_list_cpu200.csv") in message
    assert str(roots[1] / "openb/openb_pod_list_cpu200.csv") in message
    assert "clusterdata" in message and "Apache-2.0" in message


def test_the_benchmarks_find_the_shipped_data_by_default() -> None:
    datafiles = _datafiles()
    assert datafiles.SHIPPED == DATA
    assert datafiles.data_file("openb/openb_pod_list_default.csv") == DATA / "openb" / "openb_pod_list_default.csv"
    assert datafiles.data_file("fgd/fgd_allo.csv") == DATA / "fgd" / "fgd_allo.csv"
