"""The CEL API: diagnostics with locations, cost limits, caching by projection, threads."""

from __future__ import annotations

import threading
import time

import pytest

from gpupolicy.policy.cel import EXPRESSION_MAX_BYTES, CelRuntimeError, Program, compile_expression
from gpupolicy.policy.device import AttributeValue, DeviceView
from gpupolicy.policy.errors import DiagnosticError, Location
from gpupolicy.policy.quantity import Quantity
from gpupolicy.policy.semver import Semver

D = "gpu.nvidia.com"


def gpu(product: str = "NVIDIA H100", memory: str = "80Gi", **extra: AttributeValue) -> DeviceView:
    attributes: dict[str, AttributeValue] = {"type": "gpu", "productName": product, **extra}
    return DeviceView(D, {D: attributes}, {D: {"memory": Quantity(memory)}})


def diagnostic(expression: str, location: Location | None = None, env: str = "selector") -> tuple[str, Location]:
    with pytest.raises(DiagnosticError) as info:
        compile_expression(expression, location, env=env)
    (d,) = info.value.diagnostics
    return d.code, d.location


def test_errors_point_into_the_users_file() -> None:
    where = Location("class.yaml", 7, 17, "spec.selectors[0].cel.expression")
    code, loc = diagnostic('device.driver == "x" && nosuch.field == 1', where)
    assert code == "cel_undeclared_reference"
    assert (loc.file, loc.line, loc.col, loc.path) == ("class.yaml", 7, 17 + 24, "spec.selectors[0].cel.expression")


def test_errors_on_later_lines_of_a_block_scalar() -> None:
    where = Location("class.yaml", 3, 5)
    code, loc = diagnostic('device.driver == "x" &&\n  device.nosuch == 1', where)
    assert code == "cel_undeclared_reference"
    assert (loc.line, loc.col) == (4, 9)  # the "." of .nosuch, where cel-go reports an undefined field


def test_message_names_the_problem() -> None:
    with pytest.raises(DiagnosticError, match="must evaluate to bool or the unknown type, not string"):
        compile_expression("device.driver", Location("a.yaml", 1, 1))
    with pytest.raises(DiagnosticError, match=r"'_==_' applied to '\(string, int\)'"):
        compile_expression("device.driver == 1")


def test_expression_length_limit_counts_bytes() -> None:
    ok = 'device.driver == "' + "x" * (EXPRESSION_MAX_BYTES - 40) + '"'
    compile_expression(ok)
    too_long = 'device.driver == "' + "é" * (EXPRESSION_MAX_BYTES // 2) + '"'
    assert diagnostic(too_long)[0] == "cel_expression_too_long"


def test_text_that_is_not_utf8_is_a_located_diagnostic() -> None:
    """A command line's undecodable bytes arrive as lone surrogates (``gpupolicy select $'\\xff'``)."""
    code, loc = diagnostic('device.driver == "\udcff"', Location("<expression>", 1, 1))
    assert (code, loc.col) == ("cel_compile_error", 19)


def test_deep_nesting_is_a_diagnostic_not_a_crash() -> None:
    assert diagnostic("[" * 300 + "1" + "]" * 300 + " == []")[0] == "cel_compile_error"
    assert diagnostic("(" * 300 + "true" + ")" * 300)[0] == "cel_compile_error"  # cel-go: each ( is an expr
    assert compile_expression("(" * 249 + "true" + ")" * 249).evaluate(gpu()) is True
    assert compile_expression("!" * 2000 + "true").evaluate(gpu()) is True  # cel-go: a run of ! is one operator
    long_chain = " && ".join(["true"] * 1200)  # long && chains are balanced, not nested
    assert compile_expression(long_chain).evaluate(gpu()) is True


def test_static_cost_limit_rejects_nested_comprehensions() -> None:
    big = "[" + ",".join(str(i) for i in range(200)) + "]"
    expression = f"{big}.all(a, {big}.all(b, {big}.exists(c, a + b + c < 0)))"
    code, _ = diagnostic(expression)
    assert code == "cel_cost_exceeded"
    assert compile_expression(f"{big}.all(a, {big}.all(b, a + b >= 0))").cost_estimate < 1_000_000


def test_runtime_budget_stops_expressions_the_estimate_cannot_see() -> None:
    program = compile_expression("claim.labels.all(a, claim.labels.all(b, a != b || true))", env="admission")
    labels = {f"k{i}": "v" for i in range(3000)}  # 3000**2 steps: far beyond the budget
    start = time.perf_counter()
    with pytest.raises(CelRuntimeError) as info:
        program.evaluate(gpu(), claim={"labels": labels})
    assert info.value.code == "cel_cost_exceeded"
    assert time.perf_counter() - start < 30


def test_runtime_errors_are_not_false() -> None:
    program = compile_expression(f'device.attributes["{D}"].profile == "1g.10gb"')
    with pytest.raises(CelRuntimeError) as info:
        program.evaluate(gpu())
    assert info.value.code == "cel_runtime_error"
    assert "no such key: profile" in info.value.message
    (result,) = program.evaluate_devices([gpu()])
    assert isinstance(result, CelRuntimeError) and result.code == "cel_runtime_error"


def test_non_bool_result_at_runtime_is_a_type_error() -> None:
    program = compile_expression(f'device.attributes["{D}"].productName')
    with pytest.raises(CelRuntimeError) as info:
        program.evaluate(gpu())
    assert info.value.code == "cel_type_error"


def test_batch_results_follow_each_device() -> None:
    program = compile_expression(f'device.capacity["{D}"].memory.compareTo(quantity("40Gi")) >= 0')
    devices = [gpu(memory="80Gi"), gpu(memory="16Gi"), gpu(memory="80Gi"), gpu(memory="40Gi")]
    assert program.evaluate_devices(devices) == [True, False, True, True]
    assert program.evaluate_devices(devices[::-1]) == [True, True, False, True]


def test_projection_ignores_unreferenced_attributes() -> None:
    program = compile_expression(f'device.attributes["{D}"].productName.startsWith("NVIDIA")')
    projection = program.projection
    assert not projection.whole and not projection.driver
    assert projection.maps["attributes"] == {D: {"productName"}}
    devices = [gpu(uuid=f"GPU-{i}") for i in range(100)] + [gpu("Tesla T4", uuid="GPU-x")]
    results = program.evaluate_devices(devices)
    assert results == [True] * 100 + [False]


def test_bind_variables_are_followed_and_dynamic_use_widens() -> None:
    bound = compile_expression(f'cel.bind(g, device.attributes["{D}"], g.type == "mig" && g.profile == "1g")')
    assert bound.projection.maps["attributes"] == {D: {"type", "profile"}}
    dynamic = compile_expression(f'device.attributes["{D}"].exists(k, k == "profile")')
    assert dynamic.projection.maps["attributes"] == {D: None}
    whole = compile_expression("cel.bind(d, device, d.driver == 'x')")
    assert whole.projection.whole is False and whole.projection.driver is True
    indexed = compile_expression(f'device.attributes["{D}"][device.driver] == 1 || true')
    assert indexed.projection.maps["attributes"] == {D: None}


def test_cache_keeps_bools_and_ints_apart() -> None:
    program = compile_expression(f'device.attributes["{D}"].flag == true')
    devices = [gpu(flag=True), gpu(flag=1), gpu(flag=True)]
    assert program.evaluate_devices(devices) == [True, False, True]


def test_versions_and_quantities_cache_by_value() -> None:
    program = compile_expression(f'device.attributes["{D}"].v.isGreaterThan(semver("1.0.0"))')
    devices = [gpu(v=Semver.parse("1.0.1")), gpu(v=Semver.parse("1.0.0+b")), gpu(v=Semver.parse("0.9.0"))]
    assert program.evaluate_devices(devices) == [True, False, False]


def test_admission_results_depend_on_the_claim() -> None:
    program = compile_expression('claim.labels.tier == "gold"', env="admission")
    devices = [gpu(), gpu()]
    assert program.evaluate_devices(devices, claim={"labels": {"tier": "gold"}}) == [True, True]
    assert program.evaluate_devices(devices, claim={"labels": {"tier": "bronze"}}) == [False, False]
    assert diagnostic('claim.labels.tier == "gold"')[0] == "cel_undeclared_reference"


def test_admission_sees_the_request_shape() -> None:
    program = compile_expression(
        'request.count <= 2 && request.allocationMode == "ExactCount" && '
        '(!("memory" in request.capacity) || request.capacity["memory"].compareTo(quantity("10Gi")) <= 0)',
        env="admission",
    )
    device = gpu()
    small = {"name": "r", "count": 1, "allocationMode": "ExactCount", "capacity": {"memory": Quantity.parse("8Gi")}}
    assert program.evaluate(device, claim={}, request=small) is True
    assert program.evaluate(device, claim={}, request={**small, "count": 3}) is False
    assert program.evaluate(device, claim={}, request={**small, "capacity": {"memory": "20Gi"}}) is False
    assert program.evaluate(device, claim={}, request={"name": "r", "allocationMode": "All"}) is False
    assert diagnostic("request.count == 'x'", env="admission")[0] == "cel_type_error"


def test_compiled_programs_are_shared_between_locations() -> None:
    a = compile_expression("device.driver == 'x'", Location("a.yaml", 1, 1))
    b = compile_expression("device.driver == 'x'", Location("b.yaml", 2, 2))
    assert isinstance(a, Program) and a.location != b.location
    assert a._core is b._core


def test_programs_are_safe_to_use_from_threads() -> None:
    program = compile_expression(
        f'device.attributes["{D}"].index % 3 == 0 && [1, 2, 3].map(x, x * 2).exists(y, y == 4)'
    )
    devices = [gpu(index=i) for i in range(300)]
    expected = [i % 3 == 0 for i in range(300)]
    failures: list[str] = []

    def work(offset: int) -> None:
        for _ in range(5):
            if [program.evaluate(d) for d in devices[offset:]] != expected[offset:]:
                failures.append("evaluate")
            if program.evaluate_devices(devices[offset:]) != expected[offset:]:
                failures.append("batch")

    threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []


def test_unknown_environment_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="unknown CEL environment"):
        compile_expression("true", env="nope")


@pytest.mark.parametrize(
    "expression",
    [
        # 20,000 x 20,000 steps, although the estimate assumes a 64-character attribute
        f'cel.bind(s, device.attributes["{D}"].csv, s.split(",").all(a, s.split(",").all(b, '
        "a.size() != b.size() || true)))",
        # string work inside a loop is charged by size
        f'device.attributes["{D}"].csv.split(",").map(c, device.attributes["{D}"].csv + "x").size() > 0',
        # regex work is charged by the size of the text
        f'device.attributes["{D}"].csv.split(",").all(c, device.attributes["{D}"].csv.matches("x$") || true)',
    ],
)
def test_runtime_budget_stops_work_on_oversized_attributes(expression: str) -> None:
    program = compile_expression(expression)
    huge = DeviceView(D, {D: {"csv": ",".join(["ab"] * 20_000)}})
    start = time.perf_counter()
    with pytest.raises(CelRuntimeError) as info:
        program.evaluate(huge)
    assert info.value.code == "cel_cost_exceeded"
    assert time.perf_counter() - start < 30
    (batch,) = program.evaluate_devices([huge])
    assert isinstance(batch, CelRuntimeError) and batch.code == "cel_cost_exceeded"
