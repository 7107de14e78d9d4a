"""Whatever a policy file holds, loading it returns a policy or raises located diagnostics; never a traceback."""

from __future__ import annotations

from typing import Any

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from gpupolicy.policy.errors import DiagnosticError
from gpupolicy.policy.policyfile import load_policy

SPEC_KEYS = [
    "driverName",
    "deviceClasses",
    "sharing",
    "admission",
    "admissionDefault",
    "preferences",
    "objective",
    "priorityTiers",
    "quotas",
    "solver",
]
ITEM_KEYS = [
    "name",
    "selector",
    "exclusive",
    "timeSlicing",
    "mps",
    "mig",
    "shares",
    "action",
    "expression",
    "weight",
    "priority",
    "namespaces",
    "matchLabels",
    "namespace",
    "gpus",
    "gpuMemory",
    "migComputeSlices",
    "selectors",
    "config",
    "interval",
    "replicas",
    "maxClients",
    "defaultActiveThreadPercentage",
    "defaultPinnedDeviceMemoryLimit",
    "profiles",
    "layout",
    "dynamic",
    "count",
    "timeLimitSeconds",
    "workers",
    "seed",
    "cel",
]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["", "true", "1Gi", "-1", "3g.40gb", "device.driver == 'x'", "Short", "Deny", "a..b", "é"]),
    st.text(max_size=12),
)
values: st.SearchStrategy[Any] = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.sampled_from(ITEM_KEYS), children, max_size=5),
    ),
    max_leaves=25,
)


@settings(max_examples=300, deadline=None)
@given(spec=st.dictionaries(st.sampled_from(SPEC_KEYS), values, max_size=6))
def test_loading_never_crashes(spec: dict[str, Any]) -> None:
    doc = {"apiVersion": "gpupolicy.dev/v1alpha1", "kind": "GpuPolicy", "metadata": {"name": "f"}, "spec": spec}
    text = yaml.safe_dump(doc, allow_unicode=True)
    try:
        load_policy(text, "fuzz.yaml")
    except DiagnosticError as err:
        assert err.diagnostics
        for d in err.diagnostics:
            assert d.code and d.code == d.code.lower() and " " not in d.code, str(d)
            assert d.location.file == "fuzz.yaml"
            assert d.location.line > 0, str(d)
