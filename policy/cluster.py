"""Cluster descriptions: a compact file that expands into nodes, GPUs and ResourceSlices.

.. code-block:: yaml

    apiVersion: gpupolicy.dev/v1alpha1
    kind: ClusterDescription
    metadata: {name: lab}
    spec:
      nodes:
      - namePrefix: gpu-node      # gpu-node-0 .. gpu-node-99
        count: 100
        gpus: {model: H100-80GB, count: 8}
        mig: dynamic              # disabled (default) | enabled | dynamic
        cpuMillis: 64000
        memory: 512Gi
        labels: {pool: inference}

Everything derived is deterministic: node names ``<namePrefix>-<i>`` (or ``name`` for a single
node), GPU UUIDs ``GPU-<uuid5(node/minor)>``, node UIDs ``uuid5(node)``, PCI bus IDs by minor.
``mig`` is the hardware's MIG mode and the default publication when no policy decides:
``dynamic`` publishes partitionable MIG devices, ``enabled`` publishes ``migInstances``.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from pydantic import Field, StrictInt, StrictStr, ValidationError, field_validator, model_validator

from gpupolicy.policy import catalog
from gpupolicy.policy.builder import DEFAULT_DRIVER, NodeRef, PublishFor, build_slices
from gpupolicy.policy.device import DeviceView
from gpupolicy.policy.errors import Diagnostic, DiagnosticError, Location
from gpupolicy.policy.gpu import EXCLUSIVE, GpuInfo, MigInstance, Mode, Publish
from gpupolicy.policy.k8s import names
from gpupolicy.policy.k8s.deviceclass import DeviceClass
from gpupolicy.policy.k8s.slice import ResourceSlice
from gpupolicy.policy.modelbase import diagnostics_from_validation
from gpupolicy.policy.policyfile.compiled import CompiledPolicy
from gpupolicy.policy.policyfile.model import API_VERSION, Metadata, PolicyModel
from gpupolicy.policy.quantity import Quantity, QuantityField
from gpupolicy.policy.yamlsrc import SourceDoc, parse_yaml

KIND = "ClusterDescription"
_UUID_NAMESPACE = uuid.UUID("6f1c3e0a-8f1e-4b7e-9d1a-2b4c6d8e0f10")
MAX_NODES = 100_000


class MigInstanceSpec(PolicyModel):
    profile: StrictStr
    start: StrictInt


class GpuSpec(PolicyModel):
    model: StrictStr
    count: StrictInt = 1
    driver_version: StrictStr = "570.124.06"
    cuda_driver_version: StrictStr = "12.8"
    mig_instances: list[MigInstanceSpec] = Field(default_factory=list)

    @field_validator("model")
    @classmethod
    def _model(cls, value: str) -> str:
        if catalog.find_model(value) is None:
            raise ValueError(f"unknown_gpu_model: {value!r} is not in the catalog ({', '.join(catalog.model_names())})")
        return value

    @field_validator("count")
    @classmethod
    def _count(cls, value: int) -> int:
        if not 0 <= value <= 64:
            raise ValueError(f"out_of_range: gpus.count must be between 0 and 64, not {value}")
        return value


class NodeGroup(PolicyModel):
    name: StrictStr | None = None
    name_prefix: StrictStr | None = None
    count: StrictInt = 1
    gpus: GpuSpec | None = None
    mig: Literal["disabled", "enabled", "dynamic"] = "disabled"
    cpu_millis: StrictInt = 64000
    memory: QuantityField = Field(default_factory=lambda: Quantity("256Gi"))
    labels: dict[StrictStr, StrictStr] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _naming(self) -> NodeGroup:
        if (self.name is None) == (self.name_prefix is None):
            raise ValueError("node_naming: set exactly one of name and namePrefix")
        if self.name is not None and self.count != 1:
            raise ValueError("node_naming: a node group with a fixed name has count 1; use namePrefix")
        if not 0 <= self.count <= MAX_NODES:
            raise ValueError(f"out_of_range: count must be between 0 and {MAX_NODES}, not {self.count}")
        if self.mig_instances_without_mig():
            raise ValueError("mig_instances_need_mig: migInstances are listed but mig is not enabled")
        return self

    def mig_instances_without_mig(self) -> bool:
        return self.gpus is not None and bool(self.gpus.mig_instances) and self.mig != "enabled"


class ClusterSpec(PolicyModel):
    nodes: list[NodeGroup]


class ClusterDescription(PolicyModel):
    api_version: Literal["gpupolicy.dev/v1alpha1"]
    kind: Literal["ClusterDescription"]
    metadata: Metadata
    spec: ClusterSpec


@dataclass(frozen=True)
class NodeInfo:
    """A node as the solver sees it: name, labels, allocatable CPU and memory, and its GPUs."""

    name: str
    uid: str
    labels: Mapping[str, str]
    cpu_millis: int
    memory_bytes: int
    gpus: tuple[GpuInfo, ...]
    mig: str = "disabled"


def _default_publish(node: NodeInfo) -> Publish:
    if node.mig == "dynamic":
        return Publish(Mode.MIG, "cluster", mig_dynamic=True)
    return EXCLUSIVE


@dataclass(frozen=True)
class Cluster:
    name: str
    nodes: tuple[NodeInfo, ...] = field(default=())

    def slices(self, publish_for: PublishFor | None = None, driver: str = DEFAULT_DRIVER) -> list[ResourceSlice]:
        """Every node's ResourceSlices. ``publish_for`` (a policy's) decides sharing; else the node's ``mig``."""
        out: list[ResourceSlice] = []
        for node in self.nodes:
            default = _default_publish(node)

            def choose(gpu: GpuInfo, view: DeviceView, default: Publish = default) -> Publish:
                return publish_for(gpu, view) if publish_for is not None else default

            out += build_slices(NodeRef(node.name, node.uid), node.gpus, publish_for=choose, driver=driver)
        return out


def gpu_uuid(node: str, minor: int) -> str:
    return f"GPU-{uuid.uuid5(_UUID_NAMESPACE, f'{node}/{minor}')}"


def node_uid(node: str) -> str:
    return str(uuid.uuid5(_UUID_NAMESPACE, node))


def _instance(node: str, minor: int, spec: MigInstanceSpec) -> MigInstance:
    key = f"{node}/{minor}/{spec.profile}/{spec.start}"
    return MigInstance(spec.profile, spec.start, uuid=f"MIG-{uuid.uuid5(_UUID_NAMESPACE, key)}")


def _gpus(node: str, group: NodeGroup) -> tuple[GpuInfo, ...]:
    spec = group.gpus
    if spec is None:
        return ()
    return tuple(
        GpuInfo(
            model=catalog.get_model(spec.model).name,
            minor=minor,
            uuid=gpu_uuid(node, minor),
            pci_bus_id=f"0000:{0x18 + minor:02x}:00.0",
            driver_version=spec.driver_version,
            cuda_driver_version=spec.cuda_driver_version,
            mig_enabled=group.mig != "disabled",
            mig_instances=tuple(_instance(node, minor, m) for m in spec.mig_instances),
            pcie_root=f"pci0000:{minor // 2:02x}",
        )
        for minor in range(spec.count)
    )


def expand(description: ClusterDescription) -> Cluster:
    nodes: list[NodeInfo] = []
    for group in description.spec.nodes:
        for i in range(group.count):
            name = group.name if group.name is not None else f"{group.name_prefix}-{i}"
            labels = {"kubernetes.io/hostname": name, **group.labels}
            memory = group.memory.ceil_integer()
            gpus = _gpus(name, group)
            nodes.append(NodeInfo(name, node_uid(name), labels, group.cpu_millis, memory, gpus, group.mig))
    return Cluster(description.metadata.name, tuple(nodes))


def _semantic(doc: SourceDoc, description: ClusterDescription) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    seen: dict[str, int] = {}
    for gi, group in enumerate(description.spec.nodes):
        first = group.name if group.name is not None else f"{group.name_prefix}-0"
        problems = names.dns1123_subdomain(first)
        if problems:
            key = "name" if group.name is not None else "namePrefix"
            message = f"node name {first!r}: {'; '.join(problems)}"
            out.append(Diagnostic("invalid_name", message, doc.locate(("spec", "nodes", gi, key))))
        if group.gpus is not None and group.gpus.mig_instances:
            out += _instance_problems(doc, gi, group.gpus)
        for i in range(group.count):
            name = group.name if group.name is not None else f"{group.name_prefix}-{i}"
            if name in seen and seen[name] != gi:
                message = f"node {name!r} is also produced by nodes[{seen[name]}]"
                out.append(Diagnostic("duplicate_name", message, doc.locate(("spec", "nodes", gi))))
                break
            seen[name] = gi
    return out


def _instance_problems(doc: SourceDoc, gi: int, spec: GpuSpec) -> list[Diagnostic]:
    model = catalog.get_model(spec.model)
    placed: list[catalog.MigPlacement] = []
    out = []
    for j, inst in enumerate(spec.mig_instances):
        location = doc.locate(("spec", "nodes", gi, "gpus", "migInstances", j))
        try:
            profile = model.profile(inst.profile)
        except KeyError as err:
            out.append(Diagnostic("unknown_mig_profile", str(err.args[0]), location))
            continue
        candidate = catalog.MigPlacement(profile, catalog.Placement(inst.start, profile.memory_slots))
        problem = catalog.placement_problem(placed, candidate)
        if problem is not None:
            out.append(Diagnostic("invalid_mig_placement", problem, location))
        else:
            placed.append(candidate)
    return out


def load_cluster_doc(doc: SourceDoc) -> Cluster:
    try:
        description = ClusterDescription.model_validate(doc.data)
    except ValidationError as err:
        raise DiagnosticError(diagnostics_from_validation(err, doc)) from None
    problems = _semantic(doc, description)
    if problems:
        raise DiagnosticError(problems)
    return expand(description)


def load_cluster(text: str, filename: str = "<input>") -> Cluster:
    """Parse a ClusterDescription file into nodes and GPUs; raise :class:`DiagnosticError` on bad input."""
    docs = parse_yaml(text, filename)
    found = [d for d in docs if d.kind == KIND]
    problems = [
        Diagnostic("unexpected_kind", f"expected kind {KIND}, not {d.kind or 'nothing'}", d.locate(("kind",)))
        for d in docs
        if d.kind != KIND
    ]
    if not found and not problems:
        problems.append(Diagnostic("cluster_missing", f"no {KIND} document in the file", Location(filename, 1, 1)))
    problems += [
        Diagnostic("multiple_clusters", f"a cluster file holds exactly one {KIND}", d.locate(("kind",)))
        for d in found[1:]
    ]
    if found and found[0].api_version != API_VERSION:
        problems.append(
            Diagnostic("unknown_api_version", f"apiVersion must be {API_VERSION}", found[0].locate(("apiVersion",)))
        )
    if problems:
        raise DiagnosticError(problems)
    return load_cluster_doc(found[0])


class _Recorder:
    """Wraps a policy's ``publish_for`` and remembers the last rule used, to locate layout errors."""

    def __init__(self, policy: CompiledPolicy) -> None:
        self.policy = policy
        self.last = ""

    def __call__(self, gpu: GpuInfo, view: DeviceView) -> Publish:
        publish = self.policy.publish_for(gpu, view)
        self.last = publish.rule
        return publish


def render(policy: CompiledPolicy, cluster: Cluster) -> tuple[list[DeviceClass], list[ResourceSlice]]:
    """The DeviceClasses and ResourceSlices ``policy`` yields on ``cluster``.

    A static MIG layout that does not fit a GPU the rule matched is reported at the rule.
    """
    recorder = _Recorder(policy)
    try:
        slices = cluster.slices(recorder, driver=policy.driver_name)
    except ValueError as err:
        code, _, message = str(err).partition(": ")
        rule = next((r for r in policy.sharing if r.rule.name == recorder.last), None)
        location = rule.rule.location if rule is not None else Location(policy.filename, 1, 1)
        raise DiagnosticError.single(code if message else "render_failed", message or str(err), location) from None
    return list(policy.device_classes), slices
