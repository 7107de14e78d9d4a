"""Devices of one GPU in the reference driver's device model, as ResourceSlice wire dicts.

Names, attributes, capacities and counters follow the NVIDIA DRA driver so that users' selectors
keep working after changing the driver domain:

- full GPU ``gpu-<minor>``: ``type=gpu``, uuid, productName, brand, architecture, versions, the
  standard ``resource.kubernetes.io/pciBusID``/``pcieRoot``; capacity ``memory`` and
  ``multiprocessors``;
- MIG device ``gpu-<minor>-mig-<profile without dots>-<giProfileId>-<start>``: ``type=mig``,
  ``parentUUID``, ``profile``, the parent's attributes; capacities ``multiprocessors``,
  ``copyEngines``, ``decoders``, ``encoders``, ``jpegEngines``, ``ofaEngines``, ``memory``;
- ``sharing`` (ours, not the reference driver's) on every device: ``mig`` on MIG devices, else
  ``exclusive``, ``timeSlicing``, ``mps`` or ``shares`` -- for selectors and admission rules. (The
  reference driver's ``memorySlice<i>`` capacities on static MIG devices are left out: placement is
  in the name, and they would push RTX PRO devices past the 32 attributes+capacities limit);
- dynamic MIG: counter set ``gpu-<minor>-counter-set`` with the totals (counter names in DNS
  form: ``copy-engines`` …) plus ``memory-slice-<i>`` = 1 per memory slot. The full GPU consumes
  everything; each profile × placement consumes its capacities and the slots it covers.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from gpupolicy.policy.catalog import Engines, GpuModel, MigPlacement, MigProfile, fits
from gpupolicy.policy.gpu import GpuInfo, Mode, Publish
from gpupolicy.policy.quantity import Quantity
from gpupolicy.policy.semver import Semver, SemverError

Wire = dict[str, Any]

STANDARD_DOMAIN = "resource.kubernetes.io"
MEMORY_STEP = 1024 * 1024

_CAPACITY_TO_COUNTER = {
    "multiprocessors": "multiprocessors",
    "copyEngines": "copy-engines",
    "decoders": "decoders",
    "encoders": "encoders",
    "jpegEngines": "jpeg-engines",
    "ofaEngines": "ofa-engines",
    "memory": "memory",
}


@lru_cache(maxsize=256)
def lenient_version(text: str) -> str:
    """``570.124.06`` -> ``570.124.6``, ``12.8`` -> ``12.8.0`` (what the reference driver publishes)."""
    try:
        return str(Semver.parse(text))
    except SemverError:
        parts = text.strip().lstrip("v").split(".")
        numbers = [int(p) for p in parts[:3] if p.isdigit()]
        if len(numbers) != min(len(parts), 3) or not numbers:
            raise ValueError(f"invalid_version: {text!r} is not a version such as 570.124.06") from None
        return ".".join(str(n) for n in (numbers + [0, 0])[:3])


@lru_cache(maxsize=256)
def _version(text: str) -> Semver:
    return Semver.parse(lenient_version(text))


@lru_cache(maxsize=4096)
def _quantity(n: int, binary: bool) -> Quantity:
    return Quantity.from_int(n, binary=binary)


def _int(n: int, binary: bool = False) -> Wire:
    # Quantity objects, not strings: pydantic takes them as they are (no re-parsing).
    return {"value": _quantity(n, binary)}


def counter_set_name(minor: int) -> str:
    return f"gpu-{minor}-counter-set"


def gpu_device_name(minor: int) -> str:
    return f"gpu-{minor}"


def mig_device_name(minor: int, profile: MigProfile, start: int) -> str:
    return f"gpu-{minor}-mig-{profile.name_part}-{profile.gi_profile_id}-{start}"


def gpu_attributes(gpu: GpuInfo) -> Wire:
    spec = gpu.spec
    attrs: Wire = {
        "type": {"string": "gpu"},
        "uuid": {"string": gpu.uuid},
        "productName": {"string": gpu.effective_product_name},
        "brand": {"string": spec.brand},
        "architecture": {"string": spec.architecture},
        "cudaComputeCapability": {"version": _version(spec.compute_capability)},
        "driverVersion": {"version": _version(gpu.driver_version)},
        "cudaDriverVersion": {"version": _version(gpu.cuda_driver_version)},
        f"{STANDARD_DOMAIN}/pciBusID": {"string": gpu.pci_bus_id},
    }
    if gpu.pcie_root:
        attrs[f"{STANDARD_DOMAIN}/pcieRoot"] = {"string": gpu.pcie_root}
    return attrs


def mig_attributes(gpu: GpuInfo, profile: MigProfile, uuid: str = "") -> Wire:
    attrs = gpu_attributes(gpu)
    attrs["type"] = {"string": "mig"}
    attrs["parentUUID"] = {"string": gpu.uuid}
    attrs["profile"] = {"string": profile.name}
    if uuid:
        attrs["uuid"] = {"string": uuid}
    else:
        del attrs["uuid"]
    return attrs


def engine_capacity(engines: Engines, memory_bytes: int) -> Wire:
    return {
        "multiprocessors": _int(engines.multiprocessors),
        "copyEngines": _int(engines.copy_engines),
        "decoders": _int(engines.decoders),
        "encoders": _int(engines.encoders),
        "jpegEngines": _int(engines.jpeg_engines),
        "ofaEngines": _int(engines.ofa_engines),
        "memory": _int(memory_bytes, binary=True),
    }


def _counters(engines: Engines, memory_bytes: int, slots: range) -> Wire:
    counters = {_CAPACITY_TO_COUNTER[k]: v for k, v in engine_capacity(engines, memory_bytes).items()}
    for i in slots:
        counters[f"memory-slice-{i}"] = _int(1)
    return counters


def _taints(gpu: GpuInfo) -> list[Wire]:
    out = []
    for t in gpu.taints:
        taint: Wire = {"key": t.key, "effect": t.effect}
        if t.value:
            taint["value"] = t.value
        out.append(taint)
    return out


def _finish(gpu: GpuInfo, device: Wire) -> Wire:
    if gpu.taints:
        device["taints"] = _taints(gpu)
    return device


def full_gpu_device(gpu: GpuInfo) -> Wire:
    spec = gpu.spec
    capacity: Wire = {"memory": _int(gpu.effective_memory_bytes, binary=True)}
    if spec.multiprocessors:
        capacity["multiprocessors"] = _int(spec.multiprocessors)
    return _finish(gpu, {"name": gpu_device_name(gpu.minor), "attributes": gpu_attributes(gpu), "capacity": capacity})


def shared_gpu_device(gpu: GpuInfo, publish: Publish) -> Wire:
    """One device that several claims may share: ``shares`` and ``memory`` are consumable."""
    device = full_gpu_device(gpu)
    if publish.shares is None:
        return device
    memory = (gpu.effective_memory_bytes // MEMORY_STEP) * MEMORY_STEP
    default = min(publish.memory_default_bytes, memory)
    default -= default % MEMORY_STEP
    device["allowMultipleAllocations"] = True
    # On a multi-allocatable device, a capacity without a request policy that a claim does not ask
    # for is consumed in full; publishing SMs would let only one claim in. Shares stand for them.
    device["capacity"].pop("multiprocessors", None)
    device["capacity"]["memory"] = {
        "value": str(Quantity.from_int(memory, binary=True)),
        "requestPolicy": {
            "default": str(Quantity.from_int(default, binary=True)),
            "validRange": {"min": "0", "max": str(Quantity.from_int(memory, binary=True)), "step": "1Mi"},
        },
    }
    # The API server refuses a step when min + step exceeds the capacity: one share has no step.
    shares_range = {"min": "1", "max": str(publish.shares), **({"step": "1"} if publish.shares > 1 else {})}
    device["capacity"]["shares"] = {
        "value": str(publish.shares),
        "requestPolicy": {"default": "1", "validRange": shares_range},
    }
    return device


def static_mig_device(gpu: GpuInfo, inst: MigPlacement, uuid: str) -> Wire:
    profile, start = inst.profile, inst.placement.start
    capacity = engine_capacity(profile.engines, profile.memory_bytes)
    return _finish(
        gpu,
        {
            "name": mig_device_name(gpu.minor, profile, start),
            "attributes": mig_attributes(gpu, profile, uuid),
            "capacity": capacity,
        },
    )


def counter_set(gpu: GpuInfo) -> Wire:
    spec = gpu.spec
    engines = spec.mig_engines
    assert engines is not None
    return {
        "name": counter_set_name(gpu.minor),
        "counters": _counters(engines, spec.mig_memory_mib * MEMORY_STEP, range(spec.mig_memory_slots)),
    }


def dynamic_devices(gpu: GpuInfo, publish: Publish) -> list[Wire]:
    """The full GPU plus every allowed profile × placement, all consuming the GPU's counter set."""
    spec: GpuModel = gpu.spec
    engines = spec.mig_engines
    assert engines is not None
    memory = spec.mig_memory_mib * MEMORY_STEP
    full = full_gpu_device(gpu)
    full["capacity"] = engine_capacity(engines, memory)
    everything = _counters(engines, memory, range(spec.mig_memory_slots))
    full["consumesCounters"] = [{"counterSet": counter_set_name(gpu.minor), "counters": everything}]
    devices = [full]
    for profile in spec.mig_profiles:
        if not publish.allows_profile(profile.name):
            continue
        for placement in profile.placements:
            device = {
                "name": mig_device_name(gpu.minor, profile, placement.start),
                "attributes": mig_attributes(gpu, profile),
                "capacity": engine_capacity(profile.engines, profile.memory_bytes),
                "consumesCounters": [
                    {
                        "counterSet": counter_set_name(gpu.minor),
                        "counters": _counters(profile.engines, profile.memory_bytes, placement.slots),
                    }
                ],
            }
            devices.append(_finish(gpu, device))
    return devices


def planned_layout(gpu: GpuInfo, layout: tuple[str, ...]) -> list[MigPlacement]:
    """Place ``layout`` (profile names) on an empty GPU: the first assignment, trying each profile's
    placements in order and backtracking, under which every instance fits."""
    spec = gpu.spec
    try:
        profiles = [spec.profile(name) for name in layout]
    except KeyError as err:
        raise ValueError(f"unknown_mig_profile: {err.args[0]}") from None

    def search(placed: list[MigPlacement], rest: list[MigProfile]) -> list[MigPlacement] | None:
        if not rest:
            return placed
        for placement in rest[0].placements:
            candidate = MigPlacement(rest[0], placement)
            if fits(placed, candidate):
                found = search([*placed, candidate], rest[1:])
                if found is not None:
                    return found
        return None

    result = search([], profiles)
    if result is None:
        raise ValueError(f"mig_layout_does_not_fit: {list(layout)} does not fit on one {spec.name}")
    return result


def static_mig_devices(gpu: GpuInfo, publish: Publish) -> list[Wire]:
    if gpu.mig_instances:
        pairs = [(inst, meta.uuid) for inst, meta in zip(gpu.mig_placements(), gpu.mig_instances)]
    else:
        pairs = [(inst, "") for inst in planned_layout(gpu, publish.mig_layout)]
    return [static_mig_device(gpu, inst, uuid) for inst, uuid in pairs]


def _label_sharing(devices: list[Wire], publish: Publish) -> list[Wire]:
    """Add the ``sharing`` attribute: ``mig`` on MIG devices, the GPU's sharing mode on full GPUs."""
    mode = publish.mode if publish.mode is not Mode.MIG else Mode.EXCLUSIVE
    for device in devices:
        mig = device["attributes"]["type"]["string"] == "mig"
        device["attributes"]["sharing"] = {"string": str(Mode.MIG if mig else mode)}
    return devices


def gpu_devices(gpu: GpuInfo, publish: Publish) -> tuple[list[Wire], Wire | None]:
    """The devices of one GPU under ``publish`` and its counter set (dynamic MIG only)."""
    devices, counters = _gpu_devices(gpu, publish)
    return _label_sharing(devices, publish), counters


def _gpu_devices(gpu: GpuInfo, publish: Publish) -> tuple[list[Wire], Wire | None]:
    # MIG devices only where MIG mode is on: the driver never switches MIG mode itself, so a
    # MIG-capable GPU with MIG off is published as a whole GPU even under a MIG rule.
    if publish.mode is Mode.MIG and gpu.spec.mig_capable and gpu.mig_enabled:
        if publish.mig_dynamic:
            return dynamic_devices(gpu, publish), counter_set(gpu)
        return static_mig_devices(gpu, publish), None
    if gpu.mig_enabled and gpu.mig_instances:
        return static_mig_devices(gpu, publish), None
    if publish.mode in (Mode.TIME_SLICING, Mode.MPS, Mode.SHARES):
        return [shared_gpu_device(gpu, publish)], None
    return [full_gpu_device(gpu)], None
