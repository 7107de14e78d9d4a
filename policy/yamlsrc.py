"""YAML documents that remember where every value came from.

``parse_yaml`` reads multi-document YAML (what ``kubectl get -o yaml`` prints, ``kind: List``
included) into plain Python values plus a map from key paths to ``line:col``, so that any
later validation error can point into the user's file. Duplicate keys are errors, as in the
API server's strict decoding.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from gpupolicy.policy.errors import Diagnostic, DiagnosticError, KeyPath, Location, format_path
from gpupolicy.policy.yamlcompose import compose_documents

MAX_FILE_BYTES = 64 * 1024 * 1024
MAX_DEPTH = 100
MAX_NODES = 2_000_000  # per file, aliases expanded: more than the densest 3 MiB API request holds

Positions = dict[KeyPath, tuple[int, int]]

# libyaml's parser when PyYAML was built with it (same marks, about ten times faster).
_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(frozen=True)
class SourceDoc:
    """One object read from a file: its plain data and how to locate its parts."""

    data: Any
    filename: str
    index: int = 0
    prefix: KeyPath = ()
    positions: Mapping[KeyPath, tuple[int, int]] = field(default_factory=dict, repr=False)
    key_positions: Mapping[KeyPath, tuple[int, int]] = field(default_factory=dict, repr=False)

    def locate_key(self, path: Sequence[str | int]) -> Location:
        """Where the key of ``path`` is written (an unknown field is reported at its key, as kubectl does, even
        when its value starts on a later line); else :meth:`locate`."""
        full: KeyPath = self.prefix + tuple(path)
        if full in self.key_positions:
            line, col = self.key_positions[full]
            return Location(self.filename, line, col, format_path(full))
        return self.locate(path)

    def locate(self, path: Sequence[str | int] = ()) -> Location:
        """The location of ``path`` (relative to this object), or of its nearest parent."""
        full: KeyPath = self.prefix + tuple(path)
        probe = full
        while probe not in self.positions and probe:
            probe = probe[:-1]
        line, col = self.positions.get(probe, (0, 0))
        return Location(self.filename, line, col, format_path(full))

    @property
    def kind(self) -> str:
        return str(self.data.get("kind", "")) if isinstance(self.data, dict) else ""

    @property
    def api_version(self) -> str:
        return str(self.data.get("apiVersion", "")) if isinstance(self.data, dict) else ""


def _walk(
    node: yaml.Node,
    path: KeyPath,
    positions: Positions,
    problems: list[Diagnostic],
    filename: str,
    keys: Positions,
) -> None:
    if len(path) > MAX_DEPTH:
        raise DiagnosticError.single(
            "yaml_too_deep", f"nesting deeper than {MAX_DEPTH} levels", _node_location(node, filename, path)
        )
    positions.setdefault(path, (node.start_mark.line + 1, node.start_mark.column + 1))
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, yaml.Node] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = key_node.value
            if key in seen:
                first = seen[key].start_mark.line + 1
                problems.append(
                    Diagnostic(
                        "yaml_duplicate_key",
                        f'duplicate key "{key}" (first defined on line {first})',
                        _node_location(key_node, filename, path + (key,)),
                    )
                )
                continue
            seen[key] = key_node
            keys.setdefault(path + (key,), (key_node.start_mark.line + 1, key_node.start_mark.column + 1))
            _walk(value_node, path + (key,), positions, problems, filename, keys)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _walk(item, path + (i,), positions, problems, filename, keys)


def _node_location(node: yaml.Node, filename: str, path: KeyPath) -> Location:
    return Location(filename, node.start_mark.line + 1, node.start_mark.column + 1, format_path(path))


def _syntax_error(exc: yaml.YAMLError, filename: str, text: str = "") -> Diagnostic:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    line, col = (mark.line + 1, mark.column + 1) if mark is not None else (0, 0)
    if isinstance(exc, yaml.reader.ReaderError):
        before = text[: exc.position]
        line, col = before.count("\n") + 1, len(before) - (before.rfind("\n") + 1) + 1
        return Diagnostic(
            "yaml_syntax_error",
            f"character U+{exc.character:04X} is not allowed in YAML",
            Location(filename, line, col),
        )
    problem = getattr(exc, "problem", None) or str(exc)
    context = getattr(exc, "context", None)
    message = f"{context}, {problem}" if context else str(problem)
    return Diagnostic("yaml_syntax_error", message, Location(filename, line, col))


def _is_list(data: Any) -> bool:
    return (
        isinstance(data, dict)
        and isinstance(data.get("kind"), str)
        and data["kind"].endswith("List")
        and isinstance(data.get("items"), list)
    )


def parse_yaml(text: str, filename: str = "<input>") -> list[SourceDoc]:
    """Parse every document of ``text``; ``kind: List`` items become documents of their own.

    Raises :class:`DiagnosticError` for syntax errors, duplicate keys and documents that are
    not mappings. Empty documents are skipped.
    """
    if len(text.encode("utf-8", "surrogatepass")) > MAX_FILE_BYTES:
        raise DiagnosticError.single(
            "file_too_large", f"file is larger than {MAX_FILE_BYTES} bytes", Location(filename)
        )
    docs: list[SourceDoc] = []
    problems: list[Diagnostic] = []
    try:
        loader = _Loader(text)
    except yaml.YAMLError as exc:
        raise DiagnosticError([_syntax_error(exc, filename, text)]) from None
    try:
        index = 0
        for node in compose_documents(loader, text, filename, MAX_DEPTH, MAX_NODES):
            positions: Positions = {}
            keys: Positions = {}
            _walk(node, (), positions, problems, filename, keys)
            data = loader.construct_document(node)
            if data is None:
                index += 1
                continue
            if not isinstance(data, dict):
                problems.append(
                    Diagnostic(
                        "yaml_not_an_object",
                        f"document {index + 1} is a {type(data).__name__}, not an object with apiVersion and kind",
                        _node_location(node, filename, ()),
                    )
                )
            elif _is_list(data):
                for i, item in enumerate(data["items"]):
                    if isinstance(item, dict):
                        docs.append(SourceDoc(item, filename, index, ("items", i), positions, keys))
                    else:
                        problems.append(
                            Diagnostic(
                                "yaml_not_an_object",
                                "list item is not an object",
                                SourceDoc(item, filename, index, (), positions).locate(("items", i)),
                            )
                        )
            else:
                docs.append(SourceDoc(data, filename, index, (), positions, keys))
            index += 1
    except yaml.YAMLError as exc:
        problems.append(_syntax_error(exc, filename, text))
    except DiagnosticError as err:  # too deep or too aliased: the rest of the stream is not read
        problems += err.diagnostics
    except (RecursionError, ValueError, TypeError, OverflowError) as exc:
        problems.append(Diagnostic("yaml_syntax_error", f"cannot read YAML: {exc}", Location(filename)))
    finally:
        loader.dispose()
    if problems:
        raise DiagnosticError(problems)
    return docs


def dump_yaml(objects: Sequence[Mapping[str, Any]]) -> str:
    """Write objects as multi-document YAML with keys sorted, as kubectl prints them."""
    return "---\n".join(
        yaml.safe_dump(dict(obj), sort_keys=True, default_flow_style=False, allow_unicode=True) for obj in objects
    )
