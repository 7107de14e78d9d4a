"""Table-driven CEL conformance cases: ``tests/policy/cel/cases/*.yaml``.

Each file has named ``devices`` written the way a ResourceSlice writes them (unqualified
attribute names belong to the driver's domain) and ``cases`` with an ``expression`` and either
``want: true|false`` or ``want_error_code``. Files may set ``env: admission`` with a ``claim``
and a ``request``. Every case is checked through both ``evaluate`` and the cached batch path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from gpupolicy.policy.cel import CelRuntimeError, compile_expression
from gpupolicy.policy.device import AttributeValue, DeviceView, split_qualified
from gpupolicy.policy.errors import DiagnosticError
from gpupolicy.policy.quantity import Quantity
from gpupolicy.policy.semver import Semver

CASES_DIR = Path(__file__).parent / "cases"


def _attribute(value: dict[str, Any]) -> AttributeValue:
    (kind, raw), *_ = value.items()
    if kind == "version":
        return Semver.parse(str(raw))
    if kind == "int":
        return int(raw)
    if kind == "bool":
        return bool(raw)
    return str(raw)


def device_from_slice(spec: dict[str, Any]) -> DeviceView:
    driver = spec["driver"]
    attributes: dict[str, dict[str, AttributeValue]] = {}
    for name, value in (spec.get("attributes") or {}).items():
        domain, ident = split_qualified(name, driver)
        attributes.setdefault(domain, {})[ident] = _attribute(value)
    capacity: dict[str, dict[str, Quantity]] = {}
    for name, value in (spec.get("capacity") or {}).items():
        domain, ident = split_qualified(name, driver)
        capacity.setdefault(domain, {})[ident] = Quantity.parse(value["value"])
    return DeviceView(driver, attributes, capacity, bool(spec.get("allowMultipleAllocations", False)))


def _load() -> list[Any]:
    params = []
    for path in sorted(CASES_DIR.glob("*.yaml")):
        doc = yaml.safe_load(path.read_text())
        devices = {name: device_from_slice(spec) for name, spec in doc["devices"].items()}
        default_device = next(iter(devices))
        for i, case in enumerate(doc["cases"]):
            device = devices[case.get("device", default_device)]
            context = {
                "env": doc.get("env", "selector"),
                "claim": case.get("claim", doc.get("claim")),
                "request": case.get("request", doc.get("request")),
            }
            params.append(pytest.param(case, device, context, id=f"{path.stem}-{i}"))
    return params


CASES = _load()


def test_suite_is_large_enough() -> None:
    assert len(CASES) >= 150


@pytest.mark.parametrize(("case", "device", "context"), CASES)
def test_case(case: dict[str, Any], device: DeviceView, context: dict[str, Any]) -> None:
    expression = case["expression"]
    want_code = case.get("want_error_code")
    try:
        program = compile_expression(expression, env=context["env"])
    except DiagnosticError as err:
        got = err.diagnostics[0].code
        assert got == want_code, f"{expression!r}: compile error {err} but wanted {case.get('want', want_code)}"
        return
    kwargs = {"claim": context["claim"], "request": context["request"]} if context["env"] == "admission" else {}
    try:
        result: bool | str = program.evaluate(device, **kwargs)
    except CelRuntimeError as err:
        result = err.code
    batch = program.evaluate_devices([device, device], **kwargs)
    batch_results = [r.code if isinstance(r, CelRuntimeError) else r for r in batch]
    assert batch_results == [result, result]
    if want_code is not None:
        assert result == want_code, f"{expression!r}: got {result!r}, wanted error {want_code}"
    else:
        assert result is case["want"], f"{expression!r}: got {result!r}, wanted {case['want']}"
