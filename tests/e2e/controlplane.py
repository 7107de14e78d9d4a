"""Start and stop a real Kubernetes control plane (etcd, kube-apiserver, optional scheduler and controller
manager) on loopback, from the binaries that ``scripts/build-testbed`` builds.

Nothing here touches the host beyond a temporary folder and free loopback ports: certificates and
service-account keys are generated with the ``openssl`` command, the admin authenticates with a static
token, and every process runs in its own session so teardown can kill it and its children.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO / "scripts" / "build-testbed"

# The DRA gates the tests need. Only gates the pinned apiserver lets us set (known and not locked to their
# default) are passed; the rest are on by default or GA there, which `enabled_features` checks afterwards.
DRA_GATES = (
    "DRAPartitionableDevices",
    "DRAConsumableCapacity",
    "DRADeviceTaints",
    "DRAPrioritizedList",
    "DRAAdminAccess",
)
RUNTIME_CONFIG = "resource.k8s.io/v1=true,resource.k8s.io/v1beta2=true,resource.k8s.io/v1beta1=true"
SERVICE_CIDR = "10.0.0.0/24"
ADMIN_TOKEN = "gpupolicy-testbed-admin-token"
READY_TIMEOUT_S = 90.0


class TestbedError(RuntimeError):
    """The control plane could not be built or started; the message carries the relevant log."""


def build_testbed(timeout_s: float) -> Path:
    """Run ``scripts/build-testbed`` (a no-op when the cache is warm) and return the binaries' folder."""
    proc = subprocess.run([str(BUILD_SCRIPT)], cwd=REPO, capture_output=True, text=True, timeout=timeout_s, check=False)
    if proc.returncode != 0:
        raise TestbedError(f"scripts/build-testbed failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}")
    return Path(proc.stdout.strip().splitlines()[-1])


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def generate_pki(folder: Path) -> None:
    """A CA, an apiserver serving certificate for loopback and the service IP, and a service-account key."""
    if shutil.which("openssl") is None:
        raise TestbedError("the openssl command is needed to generate the test bed's certificates")
    folder.mkdir(parents=True, exist_ok=True)
    _openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=gpupolicy-testbed-ca",
        "-keyout", "ca.key", "-out", "ca.crt",
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        cwd=folder,
    )  # fmt: skip
    (folder / "server.ext").write_text(
        "basicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth\n"
        "authorityKeyIdentifier=keyid\n"
        "subjectAltName=IP:127.0.0.1,IP:10.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,"
        "DNS:kubernetes.default.svc\n"
    )
    _openssl(
        "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=kube-apiserver",
        "-keyout", "server.key", "-out", "server.csr", cwd=folder,
    )  # fmt: skip
    _openssl(
        "x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
        "-days", "2", "-extfile", "server.ext", "-out", "server.crt", cwd=folder,
    )  # fmt: skip
    _openssl("genrsa", "-out", "sa.key", "2048", cwd=folder)
    _openssl("rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=folder)


def write_kubeconfig(path: Path, server: str, ca_file: Path, token: str) -> None:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "testbed", "cluster": {"server": server, "certificate-authority": str(ca_file)}}],
        "users": [{"name": "admin", "user": {"token": token}}],
        "contexts": [{"name": "testbed", "context": {"cluster": "testbed", "user": "admin"}}],
        "current-context": "testbed",
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))


@dataclass
class Process:
    """One control-plane process, its log file, and how to tell it is up."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def tail(self, chars: int = 4000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.popen.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGTERM)
        try:
            self.popen.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(timeout=15)


_LIBC = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True) if os.name == "posix" else None
_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """In the child, before exec: get SIGKILL when the test process dies, even if it is killed without teardown
    (a CI timeout), so no etcd or apiserver outlives its session. Linux only; elsewhere a no-op."""
    if _LIBC is not None and hasattr(_LIBC, "prctl"):
        _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def start_process(name: str, argv: list[str], logs: Path) -> Process:
    log = logs / f"{name}.log"
    with log.open("wb") as out:
        popen = subprocess.Popen(
            argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=die_with_parent,  # only a prctl call in the child
        )
    return Process(name, popen, log)


def wait_healthy(proc: Process, url: str, ca_file: Path | None, token: str | None, timeout_s: float) -> None:
    """Poll ``url`` until it answers 200 ``ok``; fail early, with the log, if the process dies."""
    context = ssl.create_default_context(cafile=str(ca_file)) if ca_file else ssl._create_unverified_context()
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    deadline = time.monotonic() + timeout_s
    last = ""
    while time.monotonic() < deadline:
        if proc.popen.poll() is not None:
            raise TestbedError(f"{proc.name} exited with {proc.popen.returncode}:\n{proc.tail()}")
        try:
            request = urllib.request.Request(url, headers=headers)
            with urllib.request.urlopen(request, context=context, timeout=5) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError) as exc:
            last = str(exc)
        time.sleep(0.2)
    raise TestbedError(f"{proc.name} not healthy at {url} after {timeout_s:.0f} s ({last}):\n{proc.tail()}")


def supported_gates(binary: Path) -> set[str]:
    """Feature gates the binary accepts as settable, read from its ``--help`` text."""
    out = subprocess.run([str(binary), "--help"], capture_output=True, text=True, timeout=60, check=False)
    gates = set()
    for line in (out.stdout + out.stderr).splitlines():
        word = line.strip().split("=", 1)[0].removeprefix("kube:")
        if word.startswith("DRA") and "=true|false" in line:
            gates.add(word)
    return gates


def gate_flag(binary: Path) -> str:
    settable = supported_gates(binary)
    return ",".join(f"{gate}=true" for gate in DRA_GATES if gate in settable)


@dataclass
class ControlPlane:
    """A running etcd + kube-apiserver (and whatever else was started on top)."""

    bin_dir: Path
    workdir: Path
    server: str
    token: str
    ca_file: Path
    kubeconfig: Path
    feature_gates: str
    processes: list[Process] = field(default_factory=list)
    start_seconds: float = 0.0

    def log_tails(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.tail(2000)}" for p in self.processes)


def _etcd_argv(bin_dir: Path, data: Path, client_port: int, peer_port: int) -> list[str]:
    client = f"http://127.0.0.1:{client_port}"
    peer = f"http://127.0.0.1:{peer_port}"
    return [
        str(bin_dir / "etcd"),
        "--name=testbed",
        f"--data-dir={data}",
        f"--listen-client-urls={client}",
        f"--advertise-client-urls={client}",
        f"--listen-peer-urls={peer}",
        f"--initial-advertise-peer-urls={peer}",
        f"--initial-cluster=testbed={peer}",
        "--unsafe-no-fsync",
        "--log-level=warn",
    ]


def _apiserver_argv(bin_dir: Path, work: Path, etcd_port: int, port: int, gates: str) -> list[str]:
    pki = work / "pki"
    (work / "tokens.csv").write_text(f'{ADMIN_TOKEN},admin,admin,"system:masters"\n')
    argv = [
        str(bin_dir / "kube-apiserver"),
        f"--etcd-servers=http://127.0.0.1:{etcd_port}",
        "--bind-address=127.0.0.1",
        "--advertise-address=127.0.0.1",
        f"--secure-port={port}",
        f"--cert-dir={work / 'apiserver-certs'}",
        f"--tls-cert-file={pki / 'server.crt'}",
        f"--tls-private-key-file={pki / 'server.key'}",
        f"--client-ca-file={pki / 'ca.crt'}",
        f"--token-auth-file={work / 'tokens.csv'}",
        "--authorization-mode=Node,RBAC",
        "--allow-privileged=true",  # as kubeadm and every GPU cluster run it: device plugins/drivers are privileged
        "--service-account-issuer=https://kubernetes.default.svc",
        f"--service-account-key-file={pki / 'sa.pub'}",
        f"--service-account-signing-key-file={pki / 'sa.key'}",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        f"--runtime-config={RUNTIME_CONFIG}",
        "--endpoint-reconciler-type=none",
        "--enable-priority-and-fairness=false",
        "--v=1",
    ]
    if gates:
        argv.append(f"--feature-gates={gates}")
    return argv


@contextlib.contextmanager
def control_plane(bin_dir: Path, workdir: Path) -> Iterator[ControlPlane]:
    """etcd and kube-apiserver, ready (``/readyz``) on return; both killed and ``workdir`` removed on exit."""
    started = time.monotonic()
    logs = workdir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    generate_pki(workdir / "pki")
    etcd_port, peer_port, api_port = free_port(), free_port(), free_port()
    gates = gate_flag(bin_dir / "kube-apiserver")
    server = f"https://127.0.0.1:{api_port}"
    plane = ControlPlane(
        bin_dir, workdir, server, ADMIN_TOKEN, workdir / "pki" / "ca.crt", workdir / "kubeconfig", gates
    )
    try:
        etcd = start_process("etcd", _etcd_argv(bin_dir, workdir / "etcd", etcd_port, peer_port), logs)
        plane.processes.append(etcd)
        wait_healthy(etcd, f"http://127.0.0.1:{etcd_port}/health", None, None, READY_TIMEOUT_S)
        api = start_process("kube-apiserver", _apiserver_argv(bin_dir, workdir, etcd_port, api_port, gates), logs)
        plane.processes.append(api)
        wait_healthy(api, f"{server}/readyz", plane.ca_file, ADMIN_TOKEN, READY_TIMEOUT_S)
        write_kubeconfig(plane.kubeconfig, server, plane.ca_file, ADMIN_TOKEN)
        plane.start_seconds = time.monotonic() - started
        yield plane
    finally:
        for proc in reversed(plane.processes):
            proc.stop()


def _component_config(plane: ControlPlane, name: str, body: dict[str, object]) -> Path:
    path = plane.workdir / f"{name}.yaml"
    path.write_text(yaml.safe_dump(body, sort_keys=False))
    return path


def start_scheduler(plane: ControlPlane, qps: int | None = None) -> Process:
    """kube-scheduler with the default profile plus DynamicResources explicitly enabled; ready on return. ``qps``:
    its client's rate limit (QPS and burst; default: the scheduler's own, 50 and 100)."""
    connection: dict[str, object] = {"kubeconfig": str(plane.kubeconfig)}
    if qps is not None:
        connection |= {"qps": qps, "burst": qps}
    config = _component_config(
        plane,
        "kube-scheduler-config",
        {
            "apiVersion": "kubescheduler.config.k8s.io/v1",
            "kind": "KubeSchedulerConfiguration",
            "clientConnection": connection,
            "leaderElection": {"leaderElect": False},
            "profiles": [
                {
                    "schedulerName": "default-scheduler",
                    "plugins": {"multiPoint": {"enabled": [{"name": "DynamicResources"}]}},
                }
            ],
        },
    )
    port = free_port()
    argv = [
        str(plane.bin_dir / "kube-scheduler"),
        f"--config={config}",
        "--bind-address=127.0.0.1",
        f"--secure-port={port}",
        f"--cert-dir={plane.workdir / 'scheduler-certs'}",
        "--v=2",
    ]
    gates = gate_flag(plane.bin_dir / "kube-scheduler")
    if gates:
        argv.append(f"--feature-gates={gates}")
    proc = start_process("kube-scheduler", argv, plane.workdir / "logs")
    plane.processes.append(proc)
    wait_healthy(proc, f"https://127.0.0.1:{port}/healthz", None, None, READY_TIMEOUT_S)
    return proc


def start_controller_manager(
    plane: ControlPlane, controllers: tuple[str, ...] = ("resourceclaim-controller",), qps: int | None = None
) -> Process:
    """kube-controller-manager running only ``controllers`` (default: the resource-claim controller, which makes
    claims from templates). ``qps``: its client's rate limit (QPS and burst; default: its own, 20 and 30)."""
    port = free_port()
    argv = [
        str(plane.bin_dir / "kube-controller-manager"),
        f"--kubeconfig={plane.kubeconfig}",
        f"--controllers={','.join(controllers)}",
        f"--root-ca-file={plane.ca_file}",  # what root-ca-certificate-publisher-controller publishes
        "--leader-elect=false",
        "--bind-address=127.0.0.1",
        f"--secure-port={port}",
        f"--cert-dir={plane.workdir / 'kcm-certs'}",
        "--v=2",
    ]
    if qps is not None:
        argv += [f"--kube-api-qps={qps}", f"--kube-api-burst={qps}"]
    gates = gate_flag(plane.bin_dir / "kube-controller-manager")
    if gates:
        argv.append(f"--feature-gates={gates}")
    proc = start_process("kube-controller-manager", argv, plane.workdir / "logs")
    plane.processes.append(proc)
    wait_healthy(proc, f"https://127.0.0.1:{port}/healthz", None, None, READY_TIMEOUT_S)
    return proc
