"""The constructs added for issue 16 (macro expansions, optional entries, quoted fields) read ``device`` through
nodes the projection analysis must follow: the cached batch result equals a fresh evaluation on every device."""

from __future__ import annotations

import pytest

from gpupolicy.policy.cel import CelRuntimeError, compile_expression
from gpupolicy.policy.device import DeviceView

A = 'device.attributes["d"]'
DEVICES = [
    DeviceView(driver="d", attributes={"d": {"s": s, "n": n}}, capacity={})
    for s in ("a b", "c", "x y z", "")
    for n in (1, 2, 5)
]
EXPRESSIONS = [
    f'{A}.s.split(" ").sortBy(w, w).first().orValue("") == "a"',
    f'[?{A}.?s, ?{A}.?t].size() == 1 && [?{A}.?s][0] == "c"',
    f'{{?"k": {A}.?s}}.k == "c"',
    f"{A}.?s.optMap(v, v.size()).value() == 1",
    f"lists.range(3).map(i, i * {A}.n).sum() == 3",
    f"timestamp({A}.n).getSeconds() == 2",
    f'duration(string({A}.n) + "s") > duration("1s")',
    "device.attributes.`d`.n == 5",
    f"format.dns1123Label().validate({A}.s).hasValue()",
    f'{A}.s.split(" ").sort().reverse()[0] == "z"',
]


def _fresh(expression: str, device: DeviceView) -> bool | str:
    try:
        return compile_expression(expression).evaluate(device)
    except CelRuntimeError as err:
        return err.code


@pytest.mark.parametrize("expression", EXPRESSIONS)
def test_cached_results_follow_each_device(expression: str) -> None:
    batch = compile_expression(expression).evaluate_devices(DEVICES)
    got = [r.code if isinstance(r, CelRuntimeError) else r for r in batch]
    assert got == [_fresh(expression, d) for d in DEVICES]
    assert len(set(map(str, got))) > 1  # the devices differ in what the expression reads
