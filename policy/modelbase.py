"""The base for every model a user writes: strict, frozen, camelCase on the wire.

``validate_doc`` turns a pydantic ``ValidationError`` into diagnostics that point into the
user's YAML file, so an unknown field reads
``claims.yaml:7:9: unknown_field: field "selector" is not allowed (at spec.devices.requests[0].selector)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from gpupolicy.policy.errors import Diagnostic, DiagnosticError
from gpupolicy.policy.yamlsrc import SourceDoc


class StrictModel(BaseModel):
    """Unknown fields are errors, values are immutable, Python names map to camelCase aliases."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        populate_by_name=True,
        validate_default=False,
        str_strip_whitespace=False,
    )

    def to_wire(self) -> dict[str, Any]:
        """The object as it appears in YAML/JSON: aliases, no unset or null fields."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


M = TypeVar("M", bound=BaseModel)

_CODES = {
    "extra_forbidden": "unknown_field",
    "missing": "missing_field",
}


def _error_code(error_type: str) -> str:
    if error_type in _CODES:
        return _CODES[error_type]
    if error_type.endswith("_type") or error_type.endswith("_parsing") or error_type == "model_type":
        return "invalid_type"
    return "invalid_value"


def _message(error: Any) -> str:
    kind = error["type"]
    loc = error["loc"]
    name = str(loc[-1]) if loc else "value"
    if kind == "extra_forbidden":
        return f'field "{name}" is not allowed'
    if kind == "missing":
        return f'required field "{name}" is missing'
    msg = str(error["msg"])
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    elif msg.startswith("Assertion failed, "):
        msg = msg[len("Assertion failed, ") :]
    return msg


def _clean_loc(loc: Sequence[Any]) -> tuple[str | int, ...]:
    """Drop pydantic's union/tagged-union markers (e.g. ``function-after[...]``) from a location."""
    out: list[str | int] = []
    for element in loc:
        if isinstance(element, int):
            out.append(element)
        elif isinstance(element, str) and ("[" in element or element.startswith("function-")):
            continue
        else:
            out.append(str(element))
    return tuple(out)


def diagnostics_from_validation(
    exc: ValidationError, doc: SourceDoc, base: Sequence[str | int] = ()
) -> list[Diagnostic]:
    diagnostics: list[Diagnostic] = []
    for error in exc.errors(include_url=False):
        path = tuple(base) + _clean_loc(error["loc"])
        # A custom error can carry its own stable code as "code: message".
        message = _message(error)
        code = _error_code(error["type"])
        if error["type"] == "value_error" and ": " in message:
            head, rest = message.split(": ", 1)
            if head.replace("_", "").isalpha() and head.islower():
                code, message = head, rest
        where = doc.locate_key(path) if code == "unknown_field" else doc.locate(path)
        diagnostics.append(Diagnostic(code, message, where))
    return diagnostics


def validate_doc(model: type[M], doc: SourceDoc, data: Any = None, base: Sequence[str | int] = ()) -> M:
    """Validate ``data`` (default: the whole document) as ``model``; raise located diagnostics."""
    try:
        return model.model_validate(doc.data if data is None else data)
    except ValidationError as exc:
        raise DiagnosticError(diagnostics_from_validation(exc, doc, base)) from None
