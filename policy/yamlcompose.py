"""Compose YAML nodes from parser events without recursion, with limits on depth and alias expansion.

PyYAML's composers recurse once per nesting level (libyaml's in C, with no check: 100,000 ``[`` crash
the process), and aliases are shared nodes that every later walk expands (a few hundred bytes of
"billion laughs" ask for hundreds of millions of nodes). This composer keeps its own stack, and for
every node knows two numbers before anything walks it:

* its **height**: how deep the tree below it goes once aliases are expanded. A node deeper than
  ``max_depth`` (the root is depth 0) is ``yaml_too_deep`` at that node, found as the parser reaches
  it; an alias to a node that contains it (``&a [*a]``) is infinitely deep;
* its **expanded size**: how many nodes it becomes once aliases are expanded.

A document may draw only so much of its size from aliases: the rule of go-yaml v3 (which
sigs.k8s.io/yaml, hence the API server, uses), ``document contains excessive aliasing``: past 1,000
decoded nodes and 100 aliased ones, the aliased share may be at most 99 % up to 400,000 nodes,
falling linearly to 10 % at 4,000,000. Like go-yaml we check it as the document grows (at every
alias), but on sizes known before anything is expanded. And a file may hold at most ``max_nodes``
nodes, aliases expanded, counted as the parser goes (``yaml_too_many_nodes``): nothing past the
limit is built.

Most files need none of this: text without a ``*`` holds no alias, and a cheap bound on its depth
(:func:`plain`) shows when no node can be too deep; such text keeps libyaml's faster composer.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import yaml

from gpupolicy.policy.errors import Diagnostic, DiagnosticError, Location

ALIAS_RATIO_LOW = 400_000  # decoded nodes up to which 99 % may come from aliases (go-yaml v3)
ALIAS_RATIO_HIGH = 4_000_000  # decoded nodes from which only 10 % may
_SATURATE = 1 << 62  # expanded sizes stop growing here (an exponential bomb stays a small int)
Mark = Any  # yaml.error.Mark, or libyaml's own mark type


def allowed_alias_ratio(decoded: int) -> float:
    """go-yaml v3's ``allowedAliasRatio``: the share of decoded nodes that may come from aliases."""
    if decoded <= ALIAS_RATIO_LOW:
        return 0.99
    if decoded >= ALIAS_RATIO_HIGH:
        return 0.10
    return 0.99 - 0.89 * (decoded - ALIAS_RATIO_LOW) / (ALIAS_RATIO_HIGH - ALIAS_RATIO_LOW)


def excessive_aliasing(written: int, aliased: int) -> bool:
    """Whether a document of ``written`` nodes that expands by ``aliased`` more breaks go-yaml's rule."""
    decoded = written + aliased
    return aliased > 100 and decoded > 1000 and aliased / decoded > allowed_alias_ratio(decoded)


@dataclass(slots=True)
class _Open:
    """A collection being composed: the node, and what is known of the tree below it so far."""

    node: yaml.SequenceNode | yaml.MappingNode
    sequence: bool
    anchored: bool
    size: int = 1
    height: int = 0
    key: yaml.Node | None = None  # a mapping's key waiting for its value


@dataclass
class _Document:
    filename: str
    max_depth: int
    max_nodes: int  # what is left of the file's node budget for this document
    anchors: dict[str, yaml.Node] = field(default_factory=dict)
    sizes: dict[int, tuple[int, int]] = field(default_factory=dict)  # id(anchored node) -> (size, height)
    unfinished: set[int] = field(default_factory=set)  # anchored collections still open
    written: int = 0
    aliased: int = 0
    biggest_alias: tuple[int, Mark] = (0, None)

    def fail(self, code: str, message: str, mark: Mark) -> DiagnosticError:
        line, col = (mark.line + 1, mark.column + 1) if mark is not None else (0, 0)
        return DiagnosticError([Diagnostic(code, message, Location(self.filename, line, col))])

    def too_deep(self, mark: Mark) -> DiagnosticError:
        return self.fail("yaml_too_deep", f"nesting deeper than {self.max_depth} levels", mark)

    def too_many(self, mark: Mark, file_limit: int) -> DiagnosticError:
        return self.fail("yaml_too_many_nodes", f"more than {file_limit} nodes in the file (aliases expanded)", mark)

    def anchor(self, name: str, node: yaml.Node, mark: Mark) -> None:
        if name in self.anchors:  # as PyYAML's composer
            first = self.anchors[name].start_mark
            raise yaml.composer.ComposerError(
                f"found duplicate anchor {name!r}; first occurrence", first, "second occurrence", mark
            )
        self.anchors[name] = node


def compose_documents(loader: Any, text: str, filename: str, max_depth: int, max_nodes: int) -> Iterator[yaml.Node]:
    """The root node of each document of ``text``, which ``loader`` (a PyYAML loader) parses; at most
    ``max_nodes`` nodes in all (aliases expanded), none deeper than ``max_depth``.

    Text in which no alias can occur and that cannot break either limit (:func:`plain`) is composed
    by the loader's own composer (libyaml's, in C: faster, and safe for such text); any other text
    by :func:`compose_document`."""
    if plain(text, max_depth, max_nodes):
        while loader.check_node():
            node = loader.get_node()
            if node is not None:
                yield node
        return
    loader.get_event()  # StreamStart
    left = max_nodes
    while not loader.check_event(yaml.StreamEndEvent):
        doc = _Document(filename, max_depth, left)
        yield compose_document(loader, doc, max_nodes)
        left -= doc.written + doc.aliased


def plain(text: str, max_depth: int, max_nodes: int) -> bool:
    """Whether ``text`` is sure to hold no alias (no ``*`` anywhere), no node deeper than ``max_depth``
    and at most ``max_nodes`` nodes, by cheap upper bounds. Depth: every ``[`` or ``{`` opens a level,
    and a block level costs at least one column of indentation or a ``- ``, ``? ``, ``: `` indicator
    for every two levels (a sequence may sit at its parent key's column; a tag or anchor cannot start a
    compact collection). Nodes: every node but a document's root follows a line break, ``,``, ``:``,
    ``-``, ``?``, ``[`` or ``{``, and at most two nodes (a block collection and its first key) follow the
    same one. Ordinary Kubernetes YAML is plain."""
    if "*" in text:
        return False
    flow = text.count("[") + text.count("{")
    widest = (max_depth - flow - 2) // 2  # the widest line prefix of spaces and indicators allowed
    if widest < 0 or _wider_prefix(widest).search(text) is not None:
        return False
    separators = flow + sum(text.count(c) for c in "\n,:-?")
    return 2 * separators + 2 <= max_nodes


@functools.lru_cache(maxsize=8)
def _wider_prefix(width: int) -> re.Pattern[str]:
    """A line that starts with more than ``width`` spaces and block indicators (one scan, no list)."""
    return re.compile(rf"^[ ?:-]{{{width + 1}}}", re.MULTILINE)


def compose_document(loader: Any, doc: _Document, file_limit: int) -> yaml.Node:
    """The root node of the next document of ``loader`` (a PyYAML loader positioned at a
    DocumentStartEvent). Raises :class:`DiagnosticError` for a document too deep, too aliased or
    with too many nodes (as the parser reaches the node that breaks the limit, before any more is
    built), and ``yaml.YAMLError`` for what the parser refuses."""
    get_event, resolve = loader.get_event, loader.resolve
    get_event()  # DocumentStart
    max_depth, max_nodes = doc.max_depth, doc.max_nodes
    stack: list[_Open] = []
    node: yaml.Node
    while True:  # scalars first: most events are scalars
        event = get_event()
        kind = type(event)
        if kind is yaml.ScalarEvent:
            if len(stack) > max_depth:
                raise doc.too_deep(event.start_mark)
            doc.written += 1
            if doc.written + doc.aliased > max_nodes:
                raise doc.too_many(event.start_mark, file_limit)
            tag = event.tag
            if tag is None or tag == "!":
                tag = resolve(yaml.ScalarNode, event.value, event.implicit)
            node = yaml.ScalarNode(tag, event.value, event.start_mark, event.end_mark, style=event.style)
            size, height = 1, 0
            if event.anchor is not None:
                doc.anchor(event.anchor, node, event.start_mark)
                doc.sizes[id(node)] = (1, 0)
        elif kind is yaml.MappingStartEvent or kind is yaml.SequenceStartEvent:
            if len(stack) > max_depth:
                raise doc.too_deep(event.start_mark)
            doc.written += 1
            if doc.written + doc.aliased > max_nodes:
                raise doc.too_many(event.start_mark, file_limit)
            stack.append(_collection(resolve, doc, event))
            continue
        elif kind is yaml.MappingEndEvent or kind is yaml.SequenceEndEvent:
            done = stack.pop()
            node, size, height = done.node, done.size, done.height
            node.end_mark = event.end_mark
            if done.anchored:
                doc.unfinished.discard(id(node))
                doc.sizes[id(node)] = (size, height)
        elif kind is yaml.AliasEvent:
            node, size, height = _alias(doc, event, len(stack))
            if doc.written + doc.aliased > max_nodes:
                raise doc.too_many(event.start_mark, file_limit)
        else:  # the parser yields nothing else inside a document
            raise doc.fail("yaml_syntax_error", f"unexpected {kind.__name__}", event.start_mark)
        if not stack:
            break
        parent = stack[-1]
        parent.size = min(parent.size + size, _SATURATE)
        if height >= parent.height:
            parent.height = height + 1
        if parent.sequence:
            parent.node.value.append(node)
        elif parent.key is None:
            parent.key = node
        else:
            parent.node.value.append((parent.key, node))
            parent.key = None
    get_event()  # DocumentEnd
    if excessive_aliasing(doc.written, doc.aliased):
        raise _excessive(doc, doc.biggest_alias[1])
    return node


def _excessive(doc: _Document, mark: Mark) -> DiagnosticError:
    decoded = doc.written + doc.aliased
    return doc.fail(
        "yaml_excessive_aliasing",
        f"document contains excessive aliasing: {doc.written} nodes written expand to {_count(decoded)} through"
        f" aliases (at most {allowed_alias_ratio(decoded):.0%} of a document may come from aliases)",
        mark,
    )


def _count(n: int) -> str:
    return f"more than {_SATURATE}" if n >= _SATURATE else str(n)


def _collection(resolve: Any, doc: _Document, event: Any) -> _Open:
    sequence = type(event) is yaml.SequenceStartEvent
    kind = yaml.SequenceNode if sequence else yaml.MappingNode
    tag = event.tag
    if tag is None or tag == "!":
        tag = resolve(kind, None, event.implicit)
    node = kind(tag, [], event.start_mark, None, flow_style=event.flow_style)
    if event.anchor is not None:
        doc.anchor(event.anchor, node, event.start_mark)
        doc.unfinished.add(id(node))
    return _Open(node, sequence, event.anchor is not None)


def _alias(doc: _Document, event: Any, depth: int) -> tuple[yaml.Node, int, int]:
    node = doc.anchors.get(event.anchor)
    if node is None:
        raise yaml.composer.ComposerError(None, None, f"found undefined alias {event.anchor!r}", event.start_mark)
    if id(node) in doc.unfinished:
        raise doc.fail("yaml_too_deep", f"alias *{event.anchor} contains itself (infinitely deep)", event.start_mark)
    size, height = doc.sizes[id(node)]
    if depth + height > doc.max_depth:
        raise doc.fail(
            "yaml_too_deep",
            f"alias *{event.anchor} expands deeper than {doc.max_depth} levels",
            event.start_mark,
        )
    doc.written += 1
    doc.aliased = min(doc.aliased + size, _SATURATE)
    if size > doc.biggest_alias[0]:
        doc.biggest_alias = (size, event.start_mark)
    if excessive_aliasing(doc.written, doc.aliased):  # checked as it grows, as go-yaml does
        raise _excessive(doc, event.start_mark)
    return node, size, height
