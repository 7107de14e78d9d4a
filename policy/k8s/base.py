"""Model bases for Kubernetes objects: camelCase on the wire only, strict scalar types.

Kubernetes decodes JSON strictly: ``count: "2"`` is not a number and ``adminAccess: "yes"`` is not a
bool, so the scalar types here do not coerce. Field names are accepted only in their wire
spelling (``deviceClassName``), never in the Python one.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated, Any

from pydantic import BeforeValidator, ConfigDict, StrictBool, StrictInt, StrictStr
from pydantic.alias_generators import to_camel

from gpupolicy.policy.modelbase import StrictModel
from gpupolicy.policy.quantity import QuantityField

Str = StrictStr
Int = StrictInt
Bool = StrictBool


def _time(value: Any) -> Any:
    """RFC 3339 timestamps; YAML may have turned an unquoted one into a datetime."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, date):
        return f"{value.isoformat()}T00:00:00Z"
    return value


Time = Annotated[StrictStr, BeforeValidator(_time)]
"""A ``metav1.Time``, kept as the RFC 3339 string kubectl prints."""


# What strings.TrimSpace in Quantity.UnmarshalJSON can trim: it sees the JSON text with escapes intact, so only
# white space written unescaped counts. That is a space and the non-ASCII spaces of unicode.IsSpace; tabs and
# newlines are always escaped in JSON, and so are U+2028/U+2029 in the JSON kubectl writes.
_GO_SPACE = " \x85\xa0\u1680" + "".join(map(chr, range(0x2000, 0x200B))) + "\u202f\u205f\u3000"


def _trim_space(value: Any) -> Any:
    return value.strip(_GO_SPACE) if isinstance(value, str) else value


WireQuantity = Annotated[QuantityField, BeforeValidator(_trim_space)]
"""A quantity as the API server decodes it from JSON (``Quantity.UnmarshalJSON``: surrounding white space is
trimmed before ``ParseQuantity``, so ``" 1"`` is 1 but ``"\\t1"`` is not; CEL's ``quantity()`` does not trim)."""


class K8sModel(StrictModel):
    """A strict, frozen Kubernetes struct with camelCase wire names."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=False,
        validate_by_name=False,
        validate_by_alias=True,
        serialize_by_alias=True,
    )


class LenientModel(K8sModel):
    """For objects we only read a part of (Pods): fields we do not model are ignored."""

    model_config = ConfigDict(extra="ignore")
