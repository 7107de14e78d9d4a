"""The typed selector generator of the CEL differential test (``tests/e2e/celgen.py``), run without Kubernetes:
every generated selector, well typed or deliberately wrong, compiles to a program or a located ``DiagnosticError``
and evaluates to a bool or a ``CelRuntimeError``, never a traceback (the oracle comparison is the test bed's
``tests/e2e/test_cel_generated.py``)."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings

from gpupolicy.policy.cel import CelRuntimeError, compile_expression
from gpupolicy.policy.device import DeviceView
from gpupolicy.policy.errors import DiagnosticError
from gpupolicy.policy.quantity import Quantity
from gpupolicy.policy.semver import Semver
from tests.e2e.celgen import generate, selector_expressions
from tests.e2e.celvocab import DRIVER

K8S = "resource.kubernetes.io"
DEVICES = [
    DeviceView(
        DRIVER,
        {
            DRIVER: {"type": "gpu", "productName": "NVIDIA H100 80GB HBM3", "driverVersion": Semver.parse("580.95.5")},
            K8S: {"pciBusID": "0000:18:00.0"},
        },
        {DRIVER: {"memory": Quantity("81559Mi"), "multiprocessors": Quantity("132")}},
    ),
    DeviceView(
        DRIVER,
        {DRIVER: {"type": "mig", "profile": "1g.10gb", "parentUUID": "GPU-1"}},
        {DRIVER: {"memory": Quantity("9984Mi"), "shares": Quantity("4")}},
    ),
]


def check(expression: str) -> str:
    """``"compile"``, ``"error"`` or ``"bool"``: the only outcomes a user may see."""
    try:
        program = compile_expression(expression, env="selector")
    except DiagnosticError as err:
        assert err.diagnostics and all(d.code.startswith("cel_") for d in err.diagnostics)
        return "compile"
    results = program.evaluate_devices(DEVICES)
    assert all(isinstance(r, (bool, CelRuntimeError)) for r in results), (expression, results)
    return "error" if any(isinstance(r, CelRuntimeError) for r in results) else "bool"


@settings(max_examples=300, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(selector_expressions())
def test_generated_selectors_never_crash(expression: str) -> None:
    check(expression)


def test_generator_is_deterministic_and_mixed() -> None:
    """The same seed gives the same selectors, and they exercise all three outcomes."""
    first = generate(16, 400)
    assert first == generate(16, 400) and first != generate(17, 400)
    outcomes = {check(e) for e in first}
    assert outcomes == {"compile", "error", "bool"}
