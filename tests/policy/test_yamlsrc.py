from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gpupolicy.policy.errors import Diagnostic, DiagnosticError
from gpupolicy.policy.yamlsrc import dump_yaml, parse_yaml

MULTI = """\
apiVersion: v1
kind: A
spec:
  items:
    - name: x
      value: 1
---
# an empty document is skipped
---
apiVersion: v1
kind: B
"""


def test_multi_document_positions() -> None:
    docs = parse_yaml(MULTI, "f.yaml")
    assert [d.kind for d in docs] == ["A", "B"]
    loc = docs[0].locate(["spec", "items", 0, "value"])
    assert (loc.file, loc.line, loc.col, loc.path) == ("f.yaml", 6, 14, "spec.items[0].value")
    # a missing key falls back to its nearest parent
    assert docs[0].locate(["spec", "items", 0, "nope"]).line == 5


def test_kind_list_expands_items_with_their_own_positions() -> None:
    text = "apiVersion: v1\nkind: List\nitems:\n- kind: X\n  spec: {}\n- kind: Y\n  spec:\n    a: 1\n"
    docs = parse_yaml(text, "l.yaml")
    assert [d.kind for d in docs] == ["X", "Y"]
    loc = docs[1].locate(["spec", "a"])
    assert (loc.line, loc.col, loc.path) == (8, 8, "items[1].spec.a")


def _codes(exc: DiagnosticError) -> list[str]:
    return [d.code for d in exc.diagnostics]


@pytest.mark.parametrize(
    ("text", "code", "line"),
    [
        ("a: [1, 2\n", "yaml_syntax_error", 2),
        ("kind: A\nkind: B\n", "yaml_duplicate_key", 2),
        ("- 1\n- 2\n", "yaml_not_an_object", 1),
        ("a: b: c\n", "yaml_syntax_error", 1),
    ],
)
def test_bad_yaml_is_a_located_diagnostic(text: str, code: str, line: int) -> None:
    with pytest.raises(DiagnosticError) as info:
        parse_yaml(text, "bad.yaml")
    first = info.value.diagnostics[0]
    assert first.code == code
    assert first.location.file == "bad.yaml"
    assert first.location.line == line


def test_diagnostic_format() -> None:
    docs = parse_yaml("spec:\n  sharing:\n  - selector: 'x'\n", "p.yaml")
    d = Diagnostic(
        "cel_type_error", "selector must evaluate to bool", docs[0].locate(["spec", "sharing", 0, "selector"])
    )
    assert str(d) == "p.yaml:3:15: cel_type_error: selector must evaluate to bool (at spec.sharing[0].selector)"


def test_dump_round_trip() -> None:
    objs = [{"kind": "A", "b": {"z": 1, "a": [1, 2]}}, {"kind": "B"}]
    assert [d.data for d in parse_yaml(dump_yaml(objs))] == objs


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_arbitrary_text_never_raises_anything_but_diagnostics(text: str) -> None:
    try:
        parse_yaml(text, "fuzz.yaml")
    except DiagnosticError as exc:
        assert exc.diagnostics
        assert all(d.location.file == "fuzz.yaml" for d in exc.diagnostics)
