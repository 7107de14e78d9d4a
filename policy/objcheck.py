"""Checks on Kubernetes objects beyond the API server's schema: every CEL selector compiles.

The API server compiles DeviceClass and ResourceClaim selectors when they are created, so a
claim whose selector does not compile never gets in. ``gpupolicy validate`` does the same here,
pointing at the expression inside the user's file. The walk runs over the document as written
(any API version, even when other fields are invalid), so every error is reported at once.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from gpupolicy.policy.cel import compile_expression
from gpupolicy.policy.errors import Diagnostic, DiagnosticError, KeyPath
from gpupolicy.policy.yamlsrc import SourceDoc

SELECTOR_KINDS = ("DeviceClass", "ResourceClaim", "ResourceClaimTemplate")


def selector_expressions(data: Any, path: KeyPath = ()) -> Iterator[tuple[KeyPath, str]]:
    """Every ``selectors[i].cel.expression`` string below ``data`` with its key path."""
    if isinstance(data, dict):
        for key, value in data.items():
            if key == "selectors" and isinstance(value, list):
                for i, selector in enumerate(value):
                    cel = selector.get("cel") if isinstance(selector, dict) else None
                    expression = cel.get("expression") if isinstance(cel, dict) else None
                    if isinstance(expression, str):
                        yield (*path, key, i, "cel", "expression"), expression
            else:
                yield from selector_expressions(value, (*path, str(key)))
    elif isinstance(data, list):
        for i, item in enumerate(data):
            yield from selector_expressions(item, (*path, i))


def check_selectors(doc: SourceDoc) -> list[Diagnostic]:
    """Compile every selector of a DeviceClass, ResourceClaim or template; return located diagnostics."""
    if doc.kind not in SELECTOR_KINDS:
        return []
    problems: list[Diagnostic] = []
    for path, expression in selector_expressions(doc.data.get("spec")):
        try:
            compile_expression(expression, doc.locate(("spec", *path)), env="selector")
        except DiagnosticError as exc:
            problems += exc.diagnostics
    return problems
