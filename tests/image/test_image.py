"""The container image: ``scripts/build-image`` builds it offline, and its entrypoint works inside it.

The image is built once per set of inputs (the script caches the archive under ~/.cache/gpupolicy-image/<hash>/, so
a warm run only unpacks it). Its layers are unpacked into a temporary folder and the entrypoint runs there under
``chroot`` as the image's user, with the image's environment: no mounts, no network, nothing left behind. podman is
not used: it is not on these machines, installing it changes the host, and the reference
(shared/reference/container-image.md) found it needs runc and host-specific flags here.

Skipped, loudly, only where the image cannot be built at all: not root, not a Debian host (no dpkg/apt-get), or the
script reports that mmdebstrap and umoci can be neither found nor fetched (exit status 4).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = [pytest.mark.image, pytest.mark.slow, pytest.mark.timeout(1800)]

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "first-fit-strands"
TOOLS_UNAVAILABLE = 4
SIZE_LIMIT = 400 * 1000 * 1000  # bytes, uncompressed


@dataclass(frozen=True)
class Image:
    archive: Path
    rootfs: Path
    config: dict[str, Any]

    @property
    def labels(self) -> dict[str, str]:
        return dict(self.config["config"].get("Labels") or {})

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        """The entrypoint with ``args``, as the image's user, with the image's environment, under chroot."""
        conf = self.config["config"]
        env = ["/usr/bin/env", "-i", *conf["Env"]]
        user = conf["User"]
        command = ["chroot", f"--userspec={user}", str(self.rootfs), *env, *conf["Entrypoint"], *args]
        return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


def _skip_loudly(why: str) -> None:
    message = f"IMAGE SMOKE TEST NOT RUN: {why}"
    print(f"\n{'!' * len(message)}\n{message}\n{'!' * len(message)}")
    pytest.skip(message)


def _build() -> Path:
    if os.geteuid() != 0:
        _skip_loudly("needs root (mmdebstrap --mode=root and chroot)")
    for tool in ("dpkg", "apt-get", "chroot", "git", "tar"):
        if shutil.which(tool) is None:
            _skip_loudly(f"{tool} is not installed: the image is built on a Debian host")
    before = _host_state()
    done = subprocess.run(
        [str(ROOT / "scripts" / "build-image")], capture_output=True, text=True, timeout=1500, check=False
    )
    assert _host_state() == before, "the build changed the host's apt state or left a mount behind"
    if done.returncode == TOOLS_UNAVAILABLE:
        _skip_loudly(f"mmdebstrap and umoci cannot be installed here: {done.stderr.strip().splitlines()[-1]}")
    assert done.returncode == 0, f"scripts/build-image failed ({done.returncode}):\n{done.stderr[-6000:]}"
    archive = Path(done.stdout.strip().splitlines()[-1])
    assert archive.is_file() and archive.name.endswith(".oci.tar"), done.stdout
    return archive


def _host_state() -> tuple[list[tuple[str, int, int]], str]:
    """The host's apt lists and package cache (names, sizes, times) and its mounts."""
    entries = []
    for folder in (Path("/var/lib/apt/lists"), Path("/var/cache/apt")):
        for path in sorted(folder.rglob("*")) if folder.is_dir() else []:
            st = path.lstat()
            entries.append((str(path), st.st_size, st.st_mtime_ns))
    return entries, Path("/proc/mounts").read_text()


def _blob(layout: Path, digest: str) -> Path:
    algorithm, hexdigest = digest.split(":")
    return layout / "blobs" / algorithm / hexdigest


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Image]:
    archive = _build()
    work = tmp_path_factory.mktemp("image")
    layout, rootfs = work / "layout", work / "rootfs"
    layout.mkdir()
    rootfs.mkdir()
    subprocess.run(["tar", "-xf", str(archive), "-C", str(layout)], check=True)
    index = json.loads((layout / "index.json").read_text())
    (entry,) = index["manifests"]
    manifest = json.loads(_blob(layout, entry["digest"]).read_text())
    config = json.loads(_blob(layout, manifest["config"]["digest"]).read_text())
    for layer in manifest["layers"]:
        assert layer["mediaType"] == "application/vnd.oci.image.layer.v1.tar+gzip"
        subprocess.run(
            ["tar", "-xzf", str(_blob(layout, layer["digest"])), "-C", str(rootfs), "--numeric-owner"], check=True
        )
    yield Image(archive, rootfs, config)
    shutil.rmtree(work)


def test_the_entrypoint_reports_the_version_and_revision_it_was_built_from(image: Image) -> None:
    done = image.run("--version")
    assert done.returncode == 0, done.stderr
    revision = image.labels["org.opencontainers.image.revision"]
    assert done.stdout == f"gpupolicy {metadata.version('gpupolicy')} (revision {revision})\n"
    assert len(revision.removesuffix("-dirty")) == 40
    assert image.labels["org.opencontainers.image.version"] == metadata.version("gpupolicy")
    assert image.labels["org.opencontainers.image.source"]


def test_validate_a_shipped_example_inside_the_image(image: Image) -> None:
    inside = image.rootfs / "tmp" / "example"
    shutil.copytree(EXAMPLE, inside)
    try:
        files = sorted(f"/tmp/example/{p.name}" for p in EXAMPLE.glob("*.yaml"))
        done = image.run("validate", *files)
    finally:
        shutil.rmtree(inside)
    assert done.returncode == 0, done.stdout + done.stderr


def test_discover_with_simulated_nvml_inside_the_image(image: Image) -> None:
    done = image.run("discover", "--nvml", "sim:8xH100-80GB", "--node-name", "n1", "-o", "yaml")
    assert done.returncode == 0, done.stderr
    (slice_,) = yaml.safe_load_all(done.stdout)
    assert slice_["kind"] == "ResourceSlice"
    assert [d["name"] for d in slice_["spec"]["devices"]] == [f"gpu-{i}" for i in range(8)]


def test_the_image_runs_as_a_non_root_user_by_default(image: Image) -> None:
    assert image.config["config"]["User"] == "65532:65532"
    passwd = (image.rootfs / "etc" / "passwd").read_text().splitlines()
    assert "gpupolicy:x:65532:65532:gpupolicy:/nonexistent:/usr/sbin/nologin" in passwd
    assert image.config["config"]["Entrypoint"] == ["/opt/gpupolicy/bin/gpupolicy"]


def _files(rootfs: Path) -> list[Path]:
    return [Path(d) / f for d, _, names in os.walk(rootfs) for f in names]


def test_the_image_holds_no_compiler_pip_tests_nvml_or_apt(image: Image) -> None:
    files = _files(image.rootfs)
    names = {p.name for p in files}
    programs = {p.name for p in files if p.parent.name in ("bin", "sbin")}
    assert not programs & {"gcc", "cc", "c++", "g++", "cpp", "as", "ld", "clang", "make"}, "a build tool"
    assert not [p for p in programs if "-gcc" in p or p.startswith("gcc-")], "a compiler"
    assert not list((image.rootfs / "usr" / "lib").glob("gcc/*/*/cc1")), "a compiler"
    assert not any(n.startswith(("libnvidia-ml", "nvidia-smi")) for n in names), "NVML belongs to the host"
    assert not names & {"apt", "apt-get", "pip", "pip3"}, "a package manager"
    site = image.rootfs / "opt" / "gpupolicy" / "lib" / "python3.11" / "site-packages"
    assert site.is_dir()
    assert not list(site.glob("pip*")) and not list(site.glob("setuptools*"))
    relative = [p.relative_to(image.rootfs) for p in files]
    assert not [p for p in relative if ".cache" in p.parts], "a cache (pip's or another)"
    assert not [p for p in relative if "tests" in p.parts or p.name.startswith("test_")], "test files"
    assert not [p for p in relative if p.parts[:2] == ("var", "lib") and "lists" in p.parts and p.is_file()]


def test_the_image_is_at_most_400_mb_unpacked(image: Image) -> None:
    size = sum(p.lstat().st_size for p in _files(image.rootfs))
    assert size <= SIZE_LIMIT, f"{size / 1e6:.0f} MB"


def test_plotting_is_not_in_the_image_and_says_so(image: Image) -> None:
    assert not list((image.rootfs / "opt" / "gpupolicy" / "lib" / "python3.11" / "site-packages").glob("matplotlib*"))
    done = image.run("simulate", "--nodes", "/n.csv", "--pods", "/p.csv", "--strategy", "fgd", "--plot", "/tmp/a.png")
    assert done.returncode == 2, done.stdout + done.stderr
    assert "plot_unavailable: --plot needs matplotlib" in done.stderr


def test_real_nvml_is_absent_from_the_image_and_that_is_an_error_not_a_traceback(image: Image) -> None:
    done = image.run("discover")
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stderr == "error: nvml_error: nvmlInit: NVML Shared Library Not Found\n"


def test_the_entrypoints_byte_code_is_compiled_and_never_checked_against_file_times(image: Image) -> None:
    site = image.rootfs / "opt" / "gpupolicy" / "lib" / "python3.11" / "site-packages"
    for pyc in (
        site / "gpupolicy" / "plugin" / "cli" / "__pycache__" / "main.cpython-311.pyc",
        site / "kubernetes" / "client" / "__pycache__" / "__init__.cpython-311.pyc",
        image.rootfs / "usr" / "lib" / "python3.11" / "__pycache__" / "argparse.cpython-311.pyc",
    ):
        flags = int.from_bytes(pyc.read_bytes()[4:8], "little")
        assert flags == 0b01, f"{pyc}: not an unchecked-hash .pyc (PEP 552 flags {flags:#b})"
