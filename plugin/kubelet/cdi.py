"""CDI specs: one transient spec file per prepared claim under the CDI root.

Vendor ``k8s.<driver>``, class ``claim``, device ``<claimUID>-<device>``; the fully qualified ID
kubelet passes to the runtime is ``k8s.<driver>/claim=<claimUID>-<device>``. The file is
``<cdi-root>/k8s.<driver>-claim_<claimUID>.json`` (CDI reads JSON and YAML alike).
"""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gpupolicy.plugin.fsutil import write_atomic
from gpupolicy.plugin.kubelet.paths import check_name

CDI_VERSION = "0.6.0"
CLASS = "claim"
CONTROL_NODES = ("/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia-uvm-tools")
MPS_PIPE_IN_CONTAINER = "/tmp/nvidia-mps"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CdiDevice:
    """The container edits for one allocated device."""

    name: str
    device_nodes: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)
    mounts: tuple[tuple[str, str], ...] = ()
    """(host path, container path) bind mounts."""


def mig_cap_minor(gpu_minor: int, gi_id: int, ci_id: int | None = None) -> int:
    """The ``nvidia-cap<N>`` minor of a MIG GPU instance (or its compute instance), as the driver's
    ``/proc/driver/nvidia-caps/mig-minors`` numbers them: 15 GIs x (1 + 8 CIs) per GPU after 2 globals."""
    base = 3 + gpu_minor * 135 + gi_id * 9
    return base if ci_id is None else base + 1 + ci_id


class CdiRegistry:
    """Writes and removes the claim spec files of one driver under ``root``."""

    def __init__(self, root: Path, driver: str) -> None:
        self.root = root
        self.vendor = f"k8s.{driver}"
        self.kind = f"{self.vendor}/{CLASS}"
        self._prefix = f"{self.vendor}-{CLASS}_"
        self._root_made = False
        self._root_text = str(root)

    def spec_path(self, claim_uid: str) -> Path:
        return Path(self.spec_file(claim_uid))

    def spec_file(self, claim_uid: str) -> str:
        """``spec_path`` as text (without pathlib, which costs more than the write on tmpfs); a UID that would make it
        anything but a file directly in the root raises :class:`~gpupolicy.plugin.kubelet.paths.UnsafePath`."""
        return f"{self._root_text}/{check_name(f'{self._prefix}{claim_uid}.json')}"

    def device_id(self, claim_uid: str, device: str) -> str:
        return f"{self.kind}={claim_uid}-{device}"

    def write(self, claim_uid: str, devices: list[CdiDevice]) -> Path:
        spec: dict[str, Any] = {
            "cdiVersion": CDI_VERSION,
            "kind": self.kind,
            "containerEdits": {"deviceNodes": [{"path": p} for p in CONTROL_NODES]},
            "devices": [self._device(claim_uid, d) for d in devices],
        }
        if not self._root_made:  # once: a syscall less per prepare (recreated if someone removes it)
            self.root.mkdir(parents=True, exist_ok=True)
            self._root_made = True
        path = self.spec_file(claim_uid)
        # Atomic (the runtime never reads half a spec) but not fsynced: the CDI root is tmpfs on real
        # nodes, and after a power loss the boot ID changes and all prepared state is discarded anyway.
        data = json.dumps(spec, sort_keys=True, separators=(",", ":")).encode()
        try:
            write_atomic(path, data, mode=0o644, durable=False)
        except FileNotFoundError:
            self.root.mkdir(parents=True, exist_ok=True)
            write_atomic(path, data, mode=0o644, durable=False)
        return Path(path)

    @staticmethod
    def _device(claim_uid: str, device: CdiDevice) -> dict[str, Any]:
        edits: dict[str, Any] = {"deviceNodes": [{"path": p} for p in device.device_nodes]}
        if device.env:
            edits["env"] = [f"{k}={v}" for k, v in sorted(device.env.items())]
        if device.mounts:
            edits["mounts"] = [
                {"hostPath": host, "containerPath": ctr, "options": ["rbind", "rw"]} for host, ctr in device.mounts
            ]
        return {"name": f"{claim_uid}-{device.name}", "containerEdits": edits}

    def remove(self, claim_uid: str) -> bool:
        try:
            os.unlink(self.spec_file(claim_uid))
            return True
        except FileNotFoundError:
            return False

    def claim_uids(self) -> list[str]:
        """Claims that have a spec file of this driver."""
        if not self.root.is_dir():
            return []
        pattern = re.compile(re.escape(self._prefix) + r"(.+)\.json$")
        return sorted(m[1] for p in self.root.iterdir() if (m := pattern.match(p.name)))
