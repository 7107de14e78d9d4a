"""A real node for the test bed: the real kubelet, a container runtime that runs nothing (``cri-standin``, built by
``scripts/build-testbed`` from ``tests/e2e/testbed/cri-standin``), and gpupolicy's plugin with the simulated NVML.

Host hygiene (CI runs as root on a shared machine, see docs/e2e.md): everything a node writes lives under one short
``/tmp/gpn-*`` folder. The kubelet runs in a private mount namespace (``unshare --mount --propagation private``) in
which ``/var/log`` is a tmpfs, ``/var/lib`` and ``/usr/libexec`` are overlays whose upper layers sit in that folder,
and the three sysctls it would otherwise write (``vm.overcommit_memory``, ``kernel.panic``,
``kernel.panic_on_oops``) are plain files bind-mounted over ``/proc/sys``, already holding the values it wants.
The namespace, and every mount in it, ends with the kubelet process. Each process is stopped by its PID (its own
process group), and gets SIGKILL if the test process dies first.
"""

from __future__ import annotations

import contextlib
import json
import shlex
import shutil
import signal
import ssl
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.e2e.controlplane import ControlPlane, Process, TestbedError, free_port, gate_flag, start_process
from tests.e2e.kube import Kube, KubeError, Obj
from tests.e2e.pluginproc import SIM_8XH100, PluginProcess

# The values the kubelet wants (it writes them when protectKernelDefaults is off); shown to it as plain files.
SYSCTLS = {"vm/overcommit_memory": "1", "kernel/panic": "10", "kernel/panic_on_oops": "1"}
# Folders the kubelet creates at fixed paths whatever --root-dir says, covered inside its namespace.
OVERLAID = ("/var/lib", "/usr/libexec")
TMPFS = ("/var/log",)
NODE_READY_TIMEOUT_S = 60.0
REGISTERED_TIMEOUT_S = 30.0


class NodeError(TestbedError):
    """The node could not be started; the message carries its logs."""


def hygiene_script(ns_dir: Path) -> str:
    """Shell commands that, run in a fresh mount namespace, cover every host path the kubelet writes."""
    lines = ["set -eu"]
    for target in TMPFS:
        lines.append(f"mount -t tmpfs -o mode=0755,size=64m gpupolicy-e2e {target}")
    for i, target in enumerate(OVERLAID):
        if not Path(target).is_dir():
            continue
        upper, work = ns_dir / f"overlay-{i}-upper", ns_dir / f"overlay-{i}-work"
        upper.mkdir(parents=True, exist_ok=True)
        work.mkdir(parents=True, exist_ok=True)
        lines.append(f"mount -t overlay gpupolicy-e2e -o lowerdir={target},upperdir={upper},workdir={work} {target}")
    for name, value in SYSCTLS.items():
        holder = ns_dir / ("sysctl-" + name.replace("/", "-"))
        holder.write_text(value + "\n")
        lines.append(f"mount --bind {holder} /proc/sys/{name}")
    return "\n".join(lines)


def kubelet_config(root: Path, port: int, healthz_port: int, cri: Path) -> dict[str, Any]:
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": "127.0.0.1",
        "port": port,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": healthz_port,
        "readOnlyPort": 0,
        # Bearer tokens are checked with the API server (TokenReview); the metrics scrape uses the admin token.
        "authentication": {"anonymous": {"enabled": False}, "webhook": {"enabled": True, "cacheTTL": "10s"}},
        "authorization": {"mode": "AlwaysAllow"},
        "containerRuntimeEndpoint": f"unix://{cri}",
        "imageServiceEndpoint": f"unix://{cri}",
        # No cgroups are created: these machines run cgroup v1, which v1.37 refuses unless told otherwise.
        "failCgroupV1": False,
        "cgroupDriver": "cgroupfs",
        "cgroupsPerQOS": False,
        "enforceNodeAllocatable": [],
        "failSwapOn": False,
        "protectKernelDefaults": False,
        "podLogsDir": str(root / "pod-logs"),
        "volumePluginDir": str(root / "volume-plugins"),
        "serializeImagePulls": False,
        "evictionHard": {"memory.available": "1Mi", "nodefs.available": "1%", "imagefs.available": "1%"},
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "maxPods": 250,
        "kubeAPIQPS": 100,
        "kubeAPIBurst": 200,
        "nodeStatusUpdateFrequency": "2s",
        # A pod whose prepare failed is retried at the next periodic sync (default 1 min, plus jitter): shorter
        # here so the crash tests do not wait minutes. Everything else is the kubelet's default.
        "syncFrequency": "10s",
    }


@dataclass
class KubeletNode:
    """One node: cri-standin + kubelet (+ the plugin, started separately so tests can order them)."""

    plane: ControlPlane
    name: str
    policy: Path
    nvml: str = SIM_8XH100
    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="gpn-", dir="/tmp")))
    cri: Process | None = None
    kubelet: Process | None = None
    kubelet_starts: int = 0
    kubelet_port: int = 0
    verbosity: int = 3  # --v; 4 adds the DRA gRPC calls ("Calling NodePrepareResources rpc"), with their timestamps
    plugin: PluginProcess = field(init=False)

    def __post_init__(self) -> None:
        for sub in ("logs", "ns", "kubelet", "cwd", "pod-logs", "volume-plugins", "plugin"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        self.plugin = PluginProcess(
            self.plane,
            self.name,
            self.policy,
            nvml=self.nvml,
            root=self.root / "plugin",
            registry=self.kubelet_root / "plugins_registry",
            resync_s=300.0,
        )

    # --- paths ------------------------------------------------------------------------------------------------
    @property
    def kubelet_root(self) -> Path:
        return self.root / "kubelet"

    @property
    def cri_socket(self) -> Path:
        return self.root / "cri.sock"

    @property
    def cri_calls_file(self) -> Path:
        return self.root / "cri-calls.jsonl"

    # --- the container runtime ----------------------------------------------------------------------------------
    def start_cri(self) -> None:
        argv = [
            str(self.plane.bin_dir / "cri-standin"),
            f"--socket={self.cri_socket}",
            f"--calls={self.cri_calls_file}",
            f"--log-root={self.root / 'cri-logs'}",
        ]
        self.cri = start_process(f"cri-standin-{self.name}", argv, self.root / "logs")
        deadline = time.monotonic() + 30
        while not self.cri_socket.exists():
            if self.cri.popen.poll() is not None or time.monotonic() > deadline:
                raise NodeError(f"cri-standin did not start:\n{self.cri.tail()}")
            time.sleep(0.05)

    def cri_calls(self) -> list[dict[str, Any]]:
        out = []
        with contextlib.suppress(OSError):
            for line in self.cri_calls_file.read_text().splitlines():
                with contextlib.suppress(json.JSONDecodeError):
                    out.append(json.loads(line))
        return out

    def cdi_devices_of(self, namespace: str, pod: str, uid: str | None = None) -> list[list[str]]:
        """The CDI device names the runtime was given, per CreateContainer call of that pod (of that pod UID only,
        when given: a re-created pod of the same name would otherwise add its calls)."""
        return [
            list(c.get("cdiDevices") or [])
            for c in self.cri_calls()
            if c["method"].endswith("/CreateContainer")
            and (c.get("namespace"), c.get("pod")) == (namespace, pod)
            and uid in (None, c.get("podUID"))
        ]

    # --- the kubelet ----------------------------------------------------------------------------------------------
    def start_kubelet(self) -> None:
        assert self.kubelet is None or self.kubelet.popen.poll() is not None, "kubelet already running"
        self.kubelet_starts += 1
        if not self.kubelet_port:
            self.kubelet_port = free_port()
        config = self.root / "kubelet-config.yaml"
        config.write_text(
            yaml.safe_dump(kubelet_config(self.root, self.kubelet_port, free_port(), self.cri_socket), sort_keys=False)
        )
        binary = self.plane.bin_dir / "kubelet"
        argv = [
            str(binary),
            f"--config={config}",
            f"--kubeconfig={self.plane.kubeconfig}",
            f"--root-dir={self.kubelet_root}",
            f"--cert-dir={self.root / 'kubelet-pki'}",
            f"--hostname-override={self.name}",
            f"--node-labels=e2e-node={self.name}",
            f"--v={self.verbosity}",  # "Registered DRA plugin" (with the chosen service) and slice deletions: 3
        ]
        gates = gate_flag(binary)
        if gates:
            argv.append(f"--feature-gates={gates}")
        script = (
            f"{hygiene_script(self.root / 'ns')}\ncd {shlex.quote(str(self.root / 'cwd'))}\nexec {shlex.join(argv)}"
        )
        wrapped = ["unshare", "--mount", "--propagation", "private", "sh", "-c", script]
        self.kubelet = start_process(f"kubelet-{self.name}-{self.kubelet_starts}", wrapped, self.root / "logs")

    def kubelet_log(self, chars: int = 6000) -> str:
        return self.kubelet.tail(chars) if self.kubelet else ""

    def wait_ready(self, kube: Kube, timeout_s: float = NODE_READY_TIMEOUT_S) -> Obj:
        def probe() -> Obj | None:
            if self.kubelet is not None and self.kubelet.popen.poll() is not None:
                raise NodeError(f"kubelet exited with {self.kubelet.popen.returncode}:\n{self.kubelet_log()}")
            try:
                node = kube.get("v1", "Node", self.name)
            except Exception:
                return None
            ready = [c for c in node.get("status", {}).get("conditions") or [] if c["type"] == "Ready"]
            taints = {t["key"] for t in node.get("spec", {}).get("taints") or []}
            ok = ready and ready[0]["status"] == "True" and "node.kubernetes.io/not-ready" not in taints
            return node if ok else None

        try:
            result: Obj = kube.wait_for(f"node {self.name} Ready", probe, timeout_s=timeout_s)
        except AssertionError as exc:
            raise NodeError(f"{exc}\n{self.kubelet_log()}") from None
        return result

    def wait_plugin_registered(self, driver: str, timeout_s: float = REGISTERED_TIMEOUT_S) -> None:
        """Until the kubelet's log says it registered the plugin's DRA service."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.registered_lines(driver):
                return
            time.sleep(0.1)
        raise NodeError(
            f"the kubelet did not register {driver}:\n{self.kubelet_log()}\n--- plugin\n{self.plugin.log()}"
        )

    def registered_lines(self, driver: str) -> list[str]:
        text = self.kubelet.log.read_text(errors="replace") if self.kubelet else ""
        return [line for line in text.splitlines() if "Registered DRA plugin" in line and driver in line]

    def stop_kubelet(self) -> None:
        """SIGTERM to the kubelet's process group, SIGKILL after 15 s (``Process.stop``)."""
        if self.kubelet is not None:
            self.kubelet.stop()

    def metrics(self) -> str:
        """The kubelet's own /metrics (its secure port; the admin token is checked by TokenReview)."""
        request = urllib.request.Request(
            f"https://127.0.0.1:{self.kubelet_port}/metrics", headers={"Authorization": f"Bearer {self.plane.token}"}
        )
        context = ssl._create_unverified_context()  # the kubelet's self-signed serving certificate
        with urllib.request.urlopen(request, context=context, timeout=10) as response:
            return str(response.read().decode())

    # --- all of it ------------------------------------------------------------------------------------------------
    def start(self, kube: Kube, driver: str) -> None:
        """Runtime, kubelet (until its Node is Ready), then the plugin (until the kubelet registered ``driver``)."""
        self.start_cri()
        self.start_kubelet()
        self.wait_ready(kube)
        self.plugin.start()
        self.wait_plugin_registered(driver)

    def remove(self, kube: Kube) -> None:
        """``close``, then delete the node's Node and ResourceSlices from the API server."""
        self.close()
        with contextlib.suppress(KubeError):
            kube.delete("v1", "Node", self.name)
        for obj in kube.list("resource.k8s.io/v1", "ResourceSlice", field_selector=f"spec.nodeName={self.name}"):
            with contextlib.suppress(KubeError):
                kube.delete("resource.k8s.io/v1", "ResourceSlice", obj["metadata"]["name"])

    def close(self) -> None:
        """Stop plugin, kubelet and runtime by PID, then remove the node's folder."""
        self.plugin.stop(signal.SIGTERM)
        self.stop_kubelet()
        if self.cri is not None:
            self.cri.stop()
        shutil.rmtree(self.root, ignore_errors=True)
