"""Hostile YAML and JSON: alias bombs and deep nesting end in a located diagnostic, in bounded time and memory.

Each hostile document is parsed in a child process with a memory cap and a time limit
(:mod:`tests.bounded`), so a regression fails here instead of hanging or crashing the test run.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from gpupolicy.policy import yamlcompose, yamlsrc
from gpupolicy.policy.errors import DiagnosticError
from gpupolicy.policy.yamlsrc import MAX_DEPTH, MAX_NODES, parse_yaml
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


# --- which composer: libyaml's for plain text, ours for the rest, the same documents either way ---

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").rglob("*.yaml"))


def _documents(text: str) -> list[tuple[object, dict[object, tuple[int, int]]]]:
    return [(d.data, dict(d.positions)) for d in parse_yaml(text, "same.yaml")]


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: str(p.relative_to(ROOT)))
def test_both_composers_read_the_examples_alike(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = path.read_text(encoding="utf-8")
    assert yamlcompose.plain(text, MAX_DEPTH, MAX_NODES)  # ordinary files keep libyaml's faster composer
    fast = _documents(text)
    monkeypatch.setattr(yamlcompose, "plain", lambda *_: False)
    assert _documents(text) == fast


@pytest.mark.parametrize(
    "text",
    [
        "kind: X\na: &x {b: [1, 2, {c: d}]}\nl:\n- - 1\n  - [2]\n-   - 3\n? [k]\n: v\n",
        "---\nkind: A\n...\n---\n# empty\n---\nkind: B\nitems: []\nm: {}\n",
        "kind: X\ns: |\n  block\n   scalar\nt: >-\n  folded\n",
        "kind: X\na: 1\na: 2\n",  # a duplicate key, reported by both
    ],
)
def test_both_composers_agree_on_small_documents(text: str, monkeypatch: pytest.MonkeyPatch) -> None:
    def outcome() -> object:
        try:
            return _documents(text)
        except DiagnosticError as err:
            return [str(d) for d in err.diagnostics]

    fast = outcome()
    monkeypatch.setattr(yamlcompose, "plain", lambda *_: False)
    assert outcome() == fast


def test_plain_is_false_when_an_alias_or_a_deep_node_is_possible() -> None:
    assert not yamlcompose.plain("a: &x 1\nb: *x\n", MAX_DEPTH, MAX_NODES)
    assert not yamlcompose.plain("a: '*'\n", MAX_DEPTH, MAX_NODES)  # any '*' at all
    assert not yamlcompose.plain("a: " + "[" * MAX_DEPTH, MAX_DEPTH, MAX_NODES)
    assert not yamlcompose.plain("a:\n" + " " * 60 + "b: 1\n", MAX_DEPTH, MAX_NODES)
    assert not yamlcompose.plain("a: [1, 2, 3]\n", MAX_DEPTH, 8)  # 2 * (1 + 2 + 1 + 1) + 2 > 8
    assert yamlcompose.plain("a: {b: [1, 2]}\n", MAX_DEPTH, MAX_NODES)


def _nest(depth: int, kinds: list[bool]) -> object:
    value: object = "x"
    for i in range(depth):
        value = {"k": value} if kinds[i % len(kinds)] else [value]
    return value


def _depth(value: object) -> int:
    depth = 0
    while isinstance(value, (dict, list)):
        value = value["k"] if isinstance(value, dict) else value[0]
        depth += 1
    return depth


@settings(max_examples=200, deadline=None)
@given(
    st.integers(min_value=1, max_value=160),
    st.lists(st.booleans(), min_size=1, max_size=4),
    st.sampled_from([False, True, None]),
    st.integers(min_value=1, max_value=4),
)
def test_plain_never_lets_a_deep_document_through(
    depth: int, kinds: list[bool], flow: bool | None, indent: int
) -> None:
    """The fast path's depth bound over-estimates, never under-estimates: block, flow and mixed
    styles, compact sequences ("- - x") and the narrowest indentation."""
    nested = _nest(depth, kinds)
    text = yaml.safe_dump({"kind": "X", "v": nested}, default_flow_style=flow, indent=max(indent, 2), width=10_000)
    if yamlcompose.plain(text, MAX_DEPTH, MAX_NODES):
        assert 1 + _depth(nested) <= MAX_DEPTH
        assert len(parse_yaml(text, "nest.yaml")) == 1


def _count_nodes(node: yaml.Node) -> int:
    count, todo = 0, [node]
    while todo:
        node = todo.pop()
        count += 1
        if isinstance(node, yaml.SequenceNode):
            todo += node.value
        elif isinstance(node, yaml.MappingNode):
            todo += [n for pair in node.value for n in pair]
    return count


_LEAVES = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=5))
_VALUES = st.recursive(
    _LEAVES,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(min_size=1, max_size=4), inner, max_size=4)
    ),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_VALUES, min_size=1, max_size=3), st.sampled_from([False, True, None]))
def test_plain_never_under_counts_nodes(documents: list[object], flow: bool | None) -> None:
    """Whatever ``plain`` lets through holds at most the nodes it was given: the separator bound
    never under-counts, in any style."""
    text = yaml.safe_dump_all(documents, default_flow_style=flow)
    nodes = sum(_count_nodes(n) for n in yaml.compose_all(text, Loader=yaml.CSafeLoader) if n is not None)
    assert not yamlcompose.plain(text, MAX_DEPTH, nodes - 1)


def test_too_many_nodes_in_one_document_is_refused_where_the_limit_is_passed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(yamlsrc, "MAX_NODES", 1000)
    text = "kind: X\nitems:\n" + "".join(f"- n{i}\n" for i in range(2000))
    with pytest.raises(DiagnosticError) as info:
        parse_yaml(text, "many.yaml")
    (diag,) = info.value.diagnostics
    assert diag.code == "yaml_too_many_nodes"
    assert diag.message == "more than 1000 nodes in the file (aliases expanded)"
    assert (diag.location.line, diag.location.col) == (3 + 1000 - 5, 3)  # root, 2 keys, the list: 996th item


def test_the_node_limit_is_for_the_whole_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(yamlsrc, "MAX_NODES", 1000)
    doc = "---\nkind: X\nitems: [" + ", ".join(["1"] * 95) + "]\n"  # 100 nodes
    assert len(parse_yaml(doc * 10, "ten.yaml")) == 10
    with pytest.raises(DiagnosticError) as info:
        parse_yaml(doc * 11, "eleven.yaml")
    assert info.value.diagnostics[0].code == "yaml_too_many_nodes"
    assert info.value.diagnostics[0].location.line == 32  # the root of the 11th document (after its ---)


def test_a_file_of_millions_of_tiny_nodes_is_refused_in_bounded_memory(tmp_path: Path) -> None:
    """Each node costs a few hundred bytes of Python objects: 16 MB of "1," would need gigabytes."""
    result = _parse_bounded(tmp_path, "kind: X\na: [" + "1," * 8_000_000 + "1]\n")
    assert isinstance(result, list)
    (diag,) = result
    assert diag["code"] == "yaml_too_many_nodes"
    assert (diag["line"], diag["col"]) == (2, 3 + 2 * (MAX_NODES - 4))  # item MAX_NODES - 4 of the list
