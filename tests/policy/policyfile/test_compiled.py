"""What a loaded policy decides: sharing (first match wins), admission, preferences, tiers, quotas."""

from __future__ import annotations

import pytest

from gpupolicy.policy.builder import build_slices, device_view, gpu_view
from gpupolicy.policy.errors import DiagnosticError
from gpupolicy.policy.gpu import GpuInfo, Mode
from gpupolicy.policy.policyfile import ClaimInfo, CompiledPolicy, RequestInfo, load_policy
from gpupolicy.policy.quantity import Quantity

HEADER = "apiVersion: gpupolicy.dev/v1alpha1\nkind: GpuPolicy\nmetadata: {name: t}\nspec:\n"
D = "gpu.gpupolicy.dev"


def _policy(body: str) -> CompiledPolicy:
    indented = "".join(f"  {line}\n" for line in body.strip("\n").splitlines())
    return load_policy(HEADER + indented, "p.yaml")


def _gpu(model: str, minor: int = 0) -> GpuInfo:
    return GpuInfo(model, minor, f"GPU-{model}-{minor}", f"0000:{minor + 1:02x}:00.0", mig_enabled=True)


SHARING = """
sharing:
- name: h100-mig
  selector: device.attributes["gpu.gpupolicy.dev"].productName.matches("H100")
  mig: {dynamic: true}
- name: big-memory-exclusive
  selector: device.capacity["gpu.gpupolicy.dev"].memory.compareTo(quantity("40Gi")) >= 0
  exclusive: {}
- name: small-mps
  mps: {maxClients: 4, defaultPinnedDeviceMemoryLimit: 2Gi, defaultActiveThreadPercentage: 30}
"""


@pytest.mark.parametrize(
    ("model", "rule", "mode"),
    [
        ("H100-80GB", "h100-mig", Mode.MIG),  # also matches rule 2: the first match wins
        ("A100-80GB", "big-memory-exclusive", Mode.EXCLUSIVE),
        ("T4", "small-mps", Mode.MPS),
    ],
)
def test_first_matching_sharing_rule_wins(model: str, rule: str, mode: Mode) -> None:
    policy = _policy(SHARING)
    gpu = _gpu(model)
    publish = policy.publish_for(gpu, gpu_view(gpu, D))
    assert (publish.rule, publish.mode) == (rule, mode)


def test_sharing_settings_reach_the_plugin() -> None:
    gpu = _gpu("T4")
    publish = _policy(SHARING).publish_for(gpu, gpu_view(gpu, D))
    assert (publish.shares, publish.mps_active_thread_percentage, publish.mps_pinned_memory_bytes) == (4, 30, 2 * 2**30)
    ts = _policy("sharing:\n- name: ts\n  timeSlicing: {interval: Long}\n").publish_for(gpu, gpu_view(gpu, D))
    assert (ts.mode, ts.time_slice_interval, ts.shares) == (Mode.TIME_SLICING, "Long", None)


def test_no_matching_rule_means_exclusive() -> None:
    policy = _policy(
        'sharing:\n- name: only-h100\n  selector: device.attributes["gpu.gpupolicy.dev"].type == "x"\n  mps: {}\n'
    )
    gpu = _gpu("T4")
    assert policy.sharing_rule_for(gpu_view(gpu, D)) is None
    assert policy.publish_for(gpu, gpu_view(gpu, D)).mode is Mode.EXCLUSIVE


def test_policy_drives_the_builder() -> None:
    policy = _policy(SHARING)
    slices = build_slices("n", [_gpu("H100-80GB", 0), _gpu("T4", 1)], publish_for=policy.publish_for, driver=D)
    devices = {d.name: d for s in slices for d in s.devices}
    assert "gpu-0-mig-3g40gb-9-4" in devices
    t4 = devices["gpu-1"]
    assert t4.allow_multiple_allocations is True
    cap = t4.capacity or {}
    assert cap["shares"].value == Quantity(4)
    assert cap["memory"].request_policy is not None
    assert cap["memory"].request_policy.default == Quantity("2Gi")


def test_device_classes_are_real_objects() -> None:
    policy = _policy(
        """
deviceClasses:
- name: mig.example.com
  selectors:
  - cel: {expression: 'device.attributes["gpu.gpupolicy.dev"].type == "mig"'}
  config:
  - opaque: {driver: gpu.gpupolicy.dev, parameters: {sharing: none}}
"""
    )
    (dc,) = policy.device_classes
    wire = dc.to_wire()
    assert wire["apiVersion"] == "resource.k8s.io/v1"
    assert wire["kind"] == "DeviceClass"
    assert wire["metadata"] == {"name": "mig.example.com"}
    assert wire["spec"]["selectors"] == [
        {"cel": {"expression": 'device.attributes["gpu.gpupolicy.dev"].type == "mig"'}}
    ]
    assert wire["spec"]["config"][0]["opaque"]["parameters"] == {"sharing": "none"}


ADMISSION = """
admission:
- name: dev-no-h100
  action: Deny
  expression: claim.namespace == "dev" && device.attributes["gpu.gpupolicy.dev"].productName.matches("H100")
  message: dev may not use H100s
- name: dev-rest
  action: Allow
  expression: claim.namespace == "dev"
- name: labelled
  action: Allow
  expression: '"team" in claim.labels && request.deviceClassName == "gpu.example.com"'
admissionDefault: Deny
"""


@pytest.mark.parametrize(
    ("namespace", "labels", "model", "cls", "allowed", "rule"),
    [
        ("dev", {}, "H100-80GB", "gpu.example.com", False, "dev-no-h100"),
        ("dev", {}, "T4", "gpu.example.com", True, "dev-rest"),
        ("prod", {"team": "a"}, "H100-80GB", "gpu.example.com", True, "labelled"),
        ("prod", {"team": "a"}, "H100-80GB", "other.example.com", False, ""),
        ("prod", {}, "T4", "gpu.example.com", False, ""),
    ],
)
def test_admission_first_match_then_default(
    namespace: str, labels: dict[str, str], model: str, cls: str, allowed: bool, rule: str
) -> None:
    policy = _policy(ADMISSION)
    decision = policy.admit(ClaimInfo(namespace, "c", labels), RequestInfo("gpu", cls), gpu_view(_gpu(model), D))
    assert (decision.allowed, decision.rule) == (allowed, rule)
    if rule == "dev-no-h100":
        assert decision.message == "dev may not use H100s"
        assert decision.location is not None and decision.location.line == 6


def test_preferences_add_weights() -> None:
    policy = _policy(
        """
preferences:
- name: mig
  weight: 10
  expression: device.attributes["gpu.gpupolicy.dev"].type == "mig"
- name: small
  weight: -3
  expression: device.capacity["gpu.gpupolicy.dev"].memory.compareTo(quantity("20Gi")) <= 0
- name: prod
  weight: 5
  expression: claim.namespace == "prod"
"""
    )
    slices = build_slices("n", [_gpu("H100-80GB")], publish_for=lambda g, v: _policy(SHARING).publish_for(g, v))
    devices = {d.name: device_view(D, d.to_wire()) for s in slices for d in s.devices}
    request = RequestInfo("r", "x")
    assert policy.preference_score(ClaimInfo("dev", "c"), request, devices["gpu-0-mig-1g10gb-19-0"]) == 7
    assert policy.preference_score(ClaimInfo("prod", "c"), request, devices["gpu-0-mig-3g40gb-9-0"]) == 15
    assert policy.preference_score(ClaimInfo("dev", "c"), request, devices["gpu-0"]) == 0


def test_priority_tiers_first_match() -> None:
    policy = _policy(
        """
priorityTiers:
- name: prod
  priority: 1000
  namespaces: [prod]
- name: urgent
  priority: 500
  expression: '"urgent" in claim.annotations'
- name: interactive
  priority: 100
  namespaces: [research, dev]
  matchLabels: {tier: interactive}
"""
    )
    assert policy.priority_of(ClaimInfo("prod", "c")) == ("prod", 1000)
    assert policy.priority_of(ClaimInfo("research", "c", {"tier": "interactive"})) == ("interactive", 100)
    assert policy.priority_of(ClaimInfo("research", "c", {"tier": "batch"})) == ("", 0)
    assert policy.priority_of(ClaimInfo("dev", "c", {}, {"urgent": "yes"})) == ("urgent", 500)


def test_quotas_objective_and_limits() -> None:
    policy = _policy(
        """
quotas:
- {namespace: team-a, gpus: 4, migComputeSlices: 14, gpuMemory: 160Gi}
objective: spread
solver: {timeLimitSeconds: 2.5, workers: 4, seed: 7}
"""
    )
    quota = policy.quota_for("team-a")
    assert quota is not None
    assert (quota.gpus, quota.mig_compute_slices, quota.gpu_memory) == (4, 14, Quantity("160Gi"))
    assert policy.quota_for("team-b") is None
    assert policy.objective == "spread"
    limits = policy.solver_limits
    assert (limits.time_limit_seconds, limits.workers, limits.seed) == (2.5, 4, 7)


def test_defaults() -> None:
    policy = _policy("{}")
    assert policy.driver_name == "gpu.gpupolicy.dev"
    assert policy.objective == "pack"
    assert policy.device_classes == ()
    assert policy.admit(ClaimInfo("a", "b"), RequestInfo("r", "c"), gpu_view(_gpu("T4"), D)).allowed


def test_nvidia_driver_name_allowed() -> None:
    assert _policy("driverName: gpu.nvidia.com").driver_name == "gpu.nvidia.com"


def test_runtime_error_is_located_not_false() -> None:
    policy = _policy(
        'sharing:\n- name: needs-profile\n  selector: device.attributes["gpu.gpupolicy.dev"].profile == "x"\n'
        "  exclusive: {}\n"
    )
    with pytest.raises(DiagnosticError) as info:
        policy.sharing_rule_for(gpu_view(_gpu("T4"), D))
    (diag,) = info.value.diagnostics
    assert diag.code == "cel_runtime_error"
    assert "needs-profile" in diag.message
    assert diag.location.line == 6
