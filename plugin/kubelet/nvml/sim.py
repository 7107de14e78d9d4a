"""A deterministic simulated NVML: any catalog GPU model, MIG with the real placement rules, faults.

State (MIG instances, MIG mode) lives in memory and, when ``state_file`` is given, in a JSON
file rewritten atomically after every change, so a restarted plugin process sees the MIG
instances an earlier (possibly killed) process created. Faults are injected by appending JSON
lines to ``<state_file>.faults`` (see ``inject_fault``), which the running plugin picks up.
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gpupolicy.plugin.fsutil import write_atomic
from gpupolicy.plugin.kubelet.nvml.types import EventKind, Gpu, HealthEvent, MigDevice, MigProfile, NvmlError
from gpupolicy.policy import catalog

DRIVER_VERSION = "580.95.05"
CUDA_DRIVER_VERSION = "13.0"
_NAMESPACE = uuid.UUID("6f1d1c3e-7f52-4c55-9a57-3f2b7c0a9d11")
_GROUP = re.compile(r"^(\d+)x([A-Za-z0-9.-]+?)(?::(mig)(?:=([A-Za-z0-9.+@-]+))?)?$")


@dataclass(frozen=True)
class SimGpuSpec:
    model: str
    mig_enabled: bool = False
    static_mig: tuple[tuple[str, int], ...] = ()
    uuid: str = ""
    """Overrides (from a cluster description); empty = the simulator's own values."""
    pci_bus_id: str = ""
    pcie_root: str = ""
    driver_version: str = ""
    cuda_driver_version: str = ""


def specs_from_cluster(path: Path, node: str) -> list[SimGpuSpec]:
    """The GPUs of ``node`` in a cluster description file, with the same UUIDs and PCI addresses
    ``gpupolicy render`` gives them, so the plugin publishes exactly what render shows."""
    from gpupolicy.plugin.fsutil import read_source
    from gpupolicy.policy.cluster import load_cluster

    cluster = load_cluster(*read_source(path))
    found = next((n for n in cluster.nodes if n.name == node), None)
    if found is None:
        names = ", ".join(n.name for n in cluster.nodes[:10])
        raise NvmlError("unknown_node", f"{path} has no node {node!r} (nodes: {names}...)")
    return [
        SimGpuSpec(
            model=gpu.model,
            mig_enabled=gpu.mig_enabled,
            static_mig=tuple((m.profile, m.start) for m in gpu.mig_instances),
            uuid=gpu.uuid,
            pci_bus_id=gpu.pci_bus_id,
            pcie_root=gpu.pcie_root or "",
            driver_version=gpu.driver_version,
            cuda_driver_version=gpu.cuda_driver_version,
        )
        for gpu in sorted(found.gpus, key=lambda g: g.minor)
    ]


MAX_SIM_GPUS = 64  # more than any real node (NVML counts GPUs per node)


def parse_spec(spec: str) -> list[SimGpuSpec]:
    """``8xH100-80GB``, ``2xA100-40GB,1xL4``, ``1xA100-40GB:mig``, ``1xA100-40GB:mig=3g.20gb@0+3g.20gb@4``."""
    gpus: list[SimGpuSpec] = []
    for group in filter(None, (g.strip() for g in spec.split(","))):
        match = _GROUP.match(group)
        if match is None:
            raise NvmlError("invalid_sim_spec", f"{group!r}: expected <count>x<model>[:mig[=<profile>@<start>+...]]")
        count, model, mig, static = int(match[1]), match[2], bool(match[3]), match[4] or ""
        found = catalog.find_model(model)
        if found is None:
            known = ", ".join(catalog.model_names())
            raise NvmlError("unknown_gpu_model", f"{model!r} is not a catalog GPU model (known: {known})")
        model = found.name
        if mig and not found.mig_capable:
            raise NvmlError("mig_not_supported", f"{model} has no MIG")
        placements = tuple((p.split("@")[0], int(p.split("@")[1])) for p in static.split("+") if "@" in p)
        gpus.extend(SimGpuSpec(model, mig, placements) for _ in range(count))
    if not gpus:
        raise NvmlError("invalid_sim_spec", "the simulated node has no GPUs")
    if len(gpus) > MAX_SIM_GPUS:
        raise NvmlError("invalid_sim_spec", f"{len(gpus)} GPUs; a simulated node has at most {MAX_SIM_GPUS}")
    return gpus


def _gpu_uuid(seed: str, index: int) -> str:
    return f"GPU-{uuid.uuid5(_NAMESPACE, f'{seed}/{index}')}"


class SimNvml:
    """Simulated NVML for ``spec`` (see ``parse_spec``); ``seed`` varies UUIDs between nodes."""

    def __init__(self, spec: str, *, seed: str = "node", state_file: Path | None = None) -> None:
        """``spec`` as ``parse_spec`` reads it, or ``@<cluster description file>`` for node ``seed`` of it."""
        self._specs = specs_from_cluster(Path(spec[1:]), seed) if spec.startswith("@") else parse_spec(spec)
        self._seed = seed
        self._lock = threading.RLock()
        self._state_file = state_file
        self._faults_offset = 0
        self._state: dict[str, Any] = self._initial_state()
        if state_file is not None and state_file.exists():
            self._state = json.loads(state_file.read_text(encoding="utf-8"))
        else:
            for index, gpu_spec in enumerate(self._specs):
                for profile, start in gpu_spec.static_mig:
                    self.create_mig(self._uuid(index), profile, start)
            self._save()

    def _initial_state(self) -> dict[str, Any]:
        return {
            "generation": 0,
            "gpus": [{"mig": s.mig_enabled, "instances": [], "lost": False} for s in self._specs],
        }

    def _save(self) -> None:
        if self._state_file is None:
            return
        # atomic; like the GPU's state, not meant to survive power loss
        write_atomic(self._state_file, json.dumps(self._state, sort_keys=True).encode(), 0o644, durable=False)

    # --- discovery -----------------------------------------------------------------------

    def _uuid(self, index: int) -> str:
        return self._specs[index].uuid or _gpu_uuid(self._seed, index)

    def _index(self, gpu_uuid: str) -> int:
        for index in range(len(self._specs)):
            if self._uuid(index) == gpu_uuid:
                return index
        raise NvmlError("not_found", f"no GPU with UUID {gpu_uuid}")

    def _mig_device(self, index: int, inst: dict[str, Any]) -> MigDevice:
        profile = self._profile(index, inst["profile"])
        return MigDevice(
            uuid=inst["uuid"],
            parent_uuid=self._uuid(index),
            parent_minor=index,
            profile=profile.name,
            gi_profile_id=profile.gi_profile_id,
            gi_id=inst["gi"],
            ci_id=0,
            start=inst["start"],
            size=profile.memory_slots,
            memory_bytes=profile.memory_bytes,
            multiprocessors=profile.engines.multiprocessors,
        )

    def _gpu(self, index: int) -> Gpu:
        spec = self._specs[index]
        model = catalog.get_model(spec.model)
        engines = model.mig_engines or catalog.Engines(model.multiprocessors, 0, 0, 0, 0, 0)
        state = self._state["gpus"][index]
        domain, bus = index // 15, 0x18 + 0x10 * (index % 15)  # 15 buses per PCI domain keep the ids valid
        return Gpu(
            index=index,
            minor=index,
            uuid=self._uuid(index),
            model=spec.model,
            product_name=model.product_name,
            brand=model.brand,
            architecture=model.architecture,
            cuda_compute_capability=model.compute_capability,
            driver_version=spec.driver_version or DRIVER_VERSION,
            cuda_driver_version=spec.cuda_driver_version or CUDA_DRIVER_VERSION,
            pci_bus_id=spec.pci_bus_id or f"{domain:04x}:{bus:02x}:00.0",
            pcie_root=spec.pcie_root or f"pci{domain:04x}:{bus & 0xF0:02x}",
            memory_bytes=model.memory_bytes,
            multiprocessors=model.multiprocessors,
            copy_engines=engines.copy_engines,
            decoders=engines.decoders,
            encoders=engines.encoders,
            jpeg_engines=engines.jpeg_engines,
            ofa_engines=engines.ofa_engines,
            mig_capable=model.mig_capable,
            mig_enabled=state["mig"],
            memory_slices=model.mig_memory_slots,
            mig_devices=tuple(self._mig_device(index, inst) for inst in state["instances"]),
        )

    def gpus(self) -> list[Gpu]:
        with self._lock:
            return [self._gpu(index) for index in range(len(self._specs))]

    def mig_profiles(self, gpu_uuid: str) -> list[MigProfile]:
        with self._lock:
            model = catalog.get_model(self._specs[self._index(gpu_uuid)].model)
            return [_nvml_profile(p) for p in model.mig_profiles]

    def _profile(self, index: int, name: str) -> catalog.MigProfile:
        model = catalog.get_model(self._specs[index].model)
        try:
            return model.profile(name)
        except KeyError:
            raise NvmlError("unknown_profile", f"GPU {index} ({model.name}) has no MIG profile {name!r}") from None

    # --- MIG -----------------------------------------------------------------------------

    def _check_placement(self, index: int, profile: catalog.MigProfile, start: int) -> None:
        state = self._state["gpus"][index]
        if state["lost"]:
            raise NvmlError("gpu_lost", f"GPU {index} has fallen off the bus")
        if not state["mig"]:
            raise NvmlError("mig_disabled", f"MIG mode is disabled on GPU {index}")
        existing = [
            catalog.MigPlacement(p, catalog.Placement(inst["start"], p.memory_slots))
            for inst in state["instances"]
            for p in [self._profile(index, inst["profile"])]
        ]
        new = catalog.MigPlacement(profile, catalog.Placement(start, profile.memory_slots))
        problem = catalog.placement_problem(existing, new)
        if problem is not None:
            raise NvmlError(_problem_code(existing, new), problem)

    def create_mig(self, gpu_uuid: str, profile: str, start: int) -> MigDevice:
        with self._lock:
            index = self._index(gpu_uuid)
            prof = self._profile(index, profile)
            self._check_placement(index, prof, start)
            state = self._state["gpus"][index]
            used = {inst["gi"] for inst in state["instances"]}
            gi = next(i for i in range(1, 64) if i not in used)
            self._state["generation"] += 1
            name = f"{gpu_uuid}/{gi}/{start}/{self._state['generation']}"
            mig_uuid = f"MIG-{uuid.uuid5(_NAMESPACE, name)}"
            inst = {"gi": gi, "profile": profile, "start": start, "uuid": mig_uuid}
            state["instances"].append(inst)
            self._save()
            return self._mig_device(index, inst)

    def destroy_mig(self, gpu_uuid: str, gi_id: int) -> None:
        with self._lock:
            index = self._index(gpu_uuid)
            state = self._state["gpus"][index]
            kept = [inst for inst in state["instances"] if inst["gi"] != gi_id]
            if len(kept) == len(state["instances"]):
                raise NvmlError("not_found", f"GPU {index} has no GPU instance {gi_id}")
            state["instances"] = kept
            self._save()

    # --- faults and events ---------------------------------------------------------------

    def apply_fault(self, index: int, kind: EventKind, xid: int = 0) -> HealthEvent:
        """Make GPU ``index`` lose itself, report an XID, or recover; returns the event NVML would give."""
        with self._lock:
            self._state["gpus"][index]["lost"] = kind is EventKind.GPU_LOST
            if kind is EventKind.XID:
                self._state["gpus"][index]["lost"] = False
            self._save()
            gpu_uuid = self._uuid(index)
            message = {EventKind.XID: f"Xid {xid}", EventKind.GPU_LOST: "GPU has fallen off the bus"}.get(kind, "")
            return HealthEvent(gpu_uuid, kind, xid, message or "GPU recovered")

    def wait_events(self, timeout_s: float) -> list[HealthEvent]:
        """Faults appended to ``<state_file>.faults`` since the last call (polls until ``timeout_s``)."""
        deadline = time.monotonic() + timeout_s
        while True:
            events = self._read_faults()
            if events or time.monotonic() >= deadline:
                return events
            time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))

    def _read_faults(self) -> list[HealthEvent]:
        if self._state_file is None:
            return []
        path = faults_path(self._state_file)
        try:
            with open(path, encoding="utf-8") as handle:
                handle.seek(self._faults_offset)
                lines = handle.readlines()
                self._faults_offset = handle.tell()
        except FileNotFoundError:
            return []
        events = []
        for line in lines:
            if line.strip():
                fault = json.loads(line)
                events.append(self.apply_fault(int(fault["gpu"]), EventKind(fault["kind"]), int(fault.get("xid", 0))))
        return events

    def is_lost(self, index: int) -> bool:
        with self._lock:
            return bool(self._state["gpus"][index]["lost"])

    def shutdown(self) -> None:
        return None


def _problem_code(existing: list[catalog.MigPlacement], new: catalog.MigPlacement) -> str:
    """The NVML-like reason ``placement_problem`` refused ``new``."""
    if new.placement not in new.profile.placements:
        return "invalid_placement"
    if any(set(inst.placement.slots) & set(new.placement.slots) for inst in existing):
        return "placement_occupied"
    if sum(i.profile.compute_slices for i in existing) + new.profile.compute_slices > new.profile.gpu_compute_slices:
        return "insufficient_compute"
    if new.profile.media_extension and any(i.profile.media_extension for i in existing):
        return "media_extension_in_use"
    return "max_instances"


def _nvml_profile(p: catalog.MigProfile) -> MigProfile:
    e = p.engines
    return MigProfile(
        name=p.name,
        gi_profile_id=p.gi_profile_id,
        compute_slices=p.compute_slices,
        memory_slices=p.memory_slots,
        memory_mib=p.memory_mib,
        multiprocessors=e.multiprocessors,
        copy_engines=e.copy_engines,
        decoders=e.decoders,
        encoders=e.encoders,
        jpeg_engines=e.jpeg_engines,
        ofa_engines=e.ofa_engines,
        max_instances=p.max_instances,
        starts=tuple(pl.start for pl in p.placements),
    )


def faults_path(state_file: Path) -> Path:
    return state_file.with_name(state_file.name + ".faults")


def inject_fault(state_file: Path, gpu: int, kind: EventKind, xid: int = 0) -> None:
    """Queue a fault for the plugin process that simulates the node behind ``state_file``."""
    with open(faults_path(state_file), "a", encoding="utf-8") as handle:
        handle.write(json.dumps({"gpu": gpu, "kind": kind.value, "xid": xid}) + "\n")
