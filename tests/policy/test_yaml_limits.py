"""Hostile YAML and JSON: alias bombs and deep nesting end in a located diagnostic, in bounded time and memory.

Each hostile document is parsed in a child process with a memory cap and a time limit
(:mod:`tests.bounded`), so a regression fails here instead of hanging or crashing the test run.
"""

from __future__ import annotations

import json

import pytest

from gpupolicy.policy.errors import DiagnosticError
from gpupolicy.policy.yamlsrc import MAX_DEPTH, parse_yaml
from tests.bounded import python


def billion_laughs(levels: int = 9, width: int = 9) -> str:
    """The classic: each anchor a list of ``width`` aliases to the previous one (``width**levels`` leaves)."""
    lines = ["apiVersion: v1", "kind: ConfigMap", "metadata: {name: lol}", "data:", '  a0: &a0 ["lol"]']
    for i in range(1, levels + 1):
        lines.append(f"  a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * width)}]")
    return "\n".join(lines) + "\n"


PARSE = """
import json, sys
from gpupolicy.policy.errors import DiagnosticError
from gpupolicy.policy.yamlsrc import parse_yaml
text = sys.stdin.read() if sys.argv[1] == "-" else open(sys.argv[1], encoding="utf-8").read()
try:
    docs = parse_yaml(text, "hostile.yaml")
except DiagnosticError as err:
    print(json.dumps([d.to_json() for d in err.diagnostics]))
else:
    print(json.dumps({"documents": len(docs)}))
"""


def _parse_bounded(tmp_path: object, text: str) -> object:
    from pathlib import Path

    assert isinstance(tmp_path, Path)
    path = tmp_path / "hostile.yaml"
    path.write_text(text, encoding="utf-8")
    out = python(PARSE, str(path), timeout=30)
    assert out.returncode == 0, f"killed or crashed (rc {out.returncode}): {out.stderr[-2000:]}"
    assert not out.traceback, out.stderr[-2000:]
    return json.loads(out.stdout)


def test_billion_laughs_is_refused_quickly_with_a_location(tmp_path: object) -> None:
    text = billion_laughs()
    assert len(text.encode()) < 600  # a few hundred bytes ask for 9**9 = 387 million nodes
    result = _parse_bounded(tmp_path, text)
    assert isinstance(result, list)
    (diag,) = result
    assert diag["code"] == "yaml_excessive_aliasing"
    assert diag["file"] == "hostile.yaml"
    assert diag["line"] >= 5 and diag["col"] > 1  # at an alias of the bomb


@pytest.mark.parametrize(
    ("name", "text", "col"),
    [
        ("flow sequences", "[" * 100_000, MAX_DEPTH + 2),
        ("JSON", '{"a": ' + "[" * 100_000, MAX_DEPTH + 7),
        ("flow mappings", "{a: " * 100_000, 4 * MAX_DEPTH + 2),
    ],
)
def test_deep_nesting_is_a_located_error_not_a_crash(tmp_path: object, name: str, text: str, col: int) -> None:
    result = _parse_bounded(tmp_path, text)
    assert isinstance(result, list), name
    (diag,) = result
    assert diag["code"] == "yaml_too_deep", name
    assert (diag["line"], diag["col"]) == (1, col), name


def test_deep_block_nesting_is_located_where_it_goes_too_deep() -> None:
    levels = MAX_DEPTH + 50
    text = "".join(f"{'  ' * i}k{i}:\n" for i in range(levels)) + "  " * levels + "x\n"
    with pytest.raises(DiagnosticError) as info:
        parse_yaml(text, "block.yaml")
    (diag,) = info.value.diagnostics
    assert diag.code == "yaml_too_deep"
    assert (diag.location.line, diag.location.col) == (MAX_DEPTH + 1, 2 * MAX_DEPTH + 1)


def test_nesting_up_to_the_limit_is_fine() -> None:
    text = '{"kind": "X", "a": ' + "[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1) + "}"
    (doc,) = parse_yaml(text, "ok.json")
    depth, value = 1, doc.data["a"]
    while value:
        value, depth = value[0], depth + 1
    assert depth == MAX_DEPTH - 1


def test_an_alias_that_contains_itself_is_refused() -> None:
    with pytest.raises(DiagnosticError) as info:
        parse_yaml("kind: X\na: &a [1, *a]\n", "self.yaml")
    (diag,) = info.value.diagnostics
    assert diag.code == "yaml_too_deep"
    assert "contains itself" in diag.message
    assert (diag.location.line, diag.location.col) == (2, 11)


def test_an_alias_that_expands_too_deep_is_refused() -> None:
    deep = "[" * 60 + "]" * 60  # height 59 below "a" (depth 1)
    text = f"kind: X\na: &a {deep}\nb: " + "[" * 45 + "*a" + "]" * 45 + "\n"  # *a at depth 46
    with pytest.raises(DiagnosticError) as info:
        parse_yaml(text, "deep.yaml")
    (diag,) = info.value.diagnostics
    assert diag.code == "yaml_too_deep"
    assert diag.location.line == 3


def test_ordinary_anchors_and_merge_keys_still_work() -> None:
    text = """\
kind: X
base: &base {driver: gpu.nvidia.com, count: 1}
items:
- <<: *base
  name: a
- <<: *base
  name: b
same: *base
list: &l [1, 2, 3]
again: [*l, *l, *l]
"""
    (doc,) = parse_yaml(text, "anchors.yaml")
    assert doc.data["items"][1] == {"driver": "gpu.nvidia.com", "count": 1, "name": "b"}
    assert doc.data["again"] == [[1, 2, 3]] * 3
    assert doc.locate(["items", 1, "name"]).line == 7


def test_many_aliases_to_small_anchors_are_fine() -> None:
    """A big honest file with one alias per object is far from the go-yaml ratio."""
    objects = ["kind: X\nlabels: &l {a: b}\n"] + [f"---\nkind: X\nname: n{i}\nlabels: {{a: b}}\n" for i in range(2000)]
    text = "".join(objects)
    text += "---\nkind: X\nlabels: &m {a: b, c: d}\nrefs: [" + ", ".join(["*m"] * 300) + "]\n"
    assert len(parse_yaml(text, "many.yaml")) == 2002


def test_excessive_aliasing_in_a_larger_document() -> None:
    """go-yaml's rule: past 1000 decoded nodes, at most 99 % of them may come from aliases."""
    leaves = ", ".join(f"k{i}: v" for i in range(100))
    text = f"kind: X\nbase: &b {{{leaves}}}\nrefs: [" + ", ".join(["*b"] * 400) + "]\n"
    with pytest.raises(DiagnosticError) as info:
        parse_yaml(text, "ratio.yaml")
    (diag,) = info.value.diagnostics
    assert diag.code == "yaml_excessive_aliasing"
    assert diag.location.line == 3
