"""Kubernetes' format library (``k8s.io/apiserver/pkg/cel/library/format.go``), which the DRA environment has.

``format.dns1123Label()`` ... ``format.datetime()`` and ``format.named(name)`` (an optional) give a named format;
``f.validate(s)`` is ``optional.none()`` when ``s`` is valid, else an optional list of the validator's messages,
word for word as ``k8s.io/apimachinery`` (v0.37.2) writes them: the DNS names through ``util/validation``
("must be no more than 63 characters"), ``qualifiedName`` and ``labelValue`` through ``api/validate/content``
("... 63 bytes"); ``uri`` is Go's ``url.ParseRequestURI``, and ``uuid``, ``byte``, ``date``, ``datetime`` are
kube-openapi's strfmt checks. Entries are ``(params, result, impl)``, registered by :mod:`.functions`.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from gpupolicy.policy.cel.core import EvalError, StaticType
from gpupolicy.policy.cel.lib import url
from gpupolicy.policy.cel.runtime.values import OptionalValue

FORMAT = "format"
Decl = tuple[tuple[StaticType, ...], StaticType, Callable[..., object]]


class NamedFormat:
    """A ``kubernetes.NamedFormat`` value: equal to another format of the same name."""

    CEL_TYPE = "kubernetes.NamedFormat"
    __slots__ = ("check", "name")

    def __init__(self, name: str, check: Callable[[str], list[str]]) -> None:
        self.name, self.check = name, check

    def __eq__(self, other: object) -> bool:
        return isinstance(other, NamedFormat) and other.name == self.name

    def __hash__(self) -> int:
        return hash(("NamedFormat", self.name))


_LABEL = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_SUBDOMAIN = _LABEL + "(\\." + _LABEL + ")*"
_DNS1035 = "[a-z]([-a-z0-9]*[a-z0-9])?"
_KEY = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_VALUE = "(" + _KEY + ")?"
_LABEL_MSG = ("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start "
              "and end with an alphanumeric character")  # fmt: skip
_SUBDOMAIN_MSG = ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and "
                  "must start and end with an alphanumeric character")  # fmt: skip
_DNS1035_MSG = ("a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an "
                "alphabetic character, and end with an alphanumeric character")  # fmt: skip
_KEY_MSG = (
    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"
)
_VALUE_MSG = ("a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must "
              "start and end with an alphanumeric character")  # fmt: skip


def _full(pattern: str) -> Callable[[str], bool]:
    compiled = re.compile(pattern, re.ASCII)
    return lambda s: compiled.fullmatch(s) is not None


_is_label, _is_subdomain, _is_1035 = _full(_LABEL), _full(_SUBDOMAIN), _full(_DNS1035)
_is_key, _is_value = _full(_KEY), _full(_VALUE)


def _regex_error(msg: str, pattern: str, *examples: str) -> str:
    shown = " or ".join(f"'{e}', " for e in examples)
    return f"{msg} (e.g. {shown}regex used for validation is '{pattern}')"


def _too_long(value: str, limit: int, unit: str) -> list[str]:
    return [f"must be no more than {limit} {unit}"] if len(value.encode()) > limit else []


def dns1123_label(value: str) -> list[str]:
    errs = _too_long(value, 63, "characters")
    if not _is_label(value):
        errs.append(
            "must not contain dots" if _is_subdomain(value) else _regex_error(_LABEL_MSG, _LABEL, "my-name", "123-abc")
        )
    return errs


def dns1123_subdomain(value: str, unit: str = "characters") -> list[str]:
    errs = _too_long(value, 253, unit)
    if not _is_subdomain(value):
        errs.append(_regex_error(_SUBDOMAIN_MSG, _SUBDOMAIN, "example.com"))
    return errs


def dns1035_label(value: str) -> list[str]:
    errs = _too_long(value, 63, "characters")
    if not _is_1035(value):
        errs.append(_regex_error(_DNS1035_MSG, _DNS1035, "my-name", "abc-123"))
    return errs


def _prefixed(check: Callable[[str], list[str]]) -> Callable[[str], list[str]]:
    """Kubernetes' ``maskTrailingDash``: a generateName prefix may end with ``-``."""

    def masked(value: str) -> list[str]:
        if len(value.encode()) > 1 and value.endswith("-"):
            value = value.encode()[:-2].decode(errors="replace") + "a"
        return check(value)

    return masked


def qualified_name(value: str) -> list[str]:
    """``content.IsLabelKey``: an optional DNS subdomain prefix, a slash, and a name."""
    errs: list[str] = []
    parts = value.split("/")
    if len(parts) > 2:
        return [
            "a valid label key "
            + _regex_error(_KEY_MSG, _KEY, "MyName", "my.name", "123-abc")
            + " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
        ]
    name = parts[-1]
    if len(parts) == 2:
        prefix = parts[0]
        if not prefix:
            errs.append("prefix part must be non-empty")
        else:
            errs += ["prefix part " + m for m in dns1123_subdomain(prefix, "bytes")]
    if not name:
        errs.append("name part must be non-empty")
    elif len(name.encode()) > 63:
        errs.append("name part must be no more than 63 bytes")
    if not _is_key(name):
        errs.append("name part " + _regex_error(_KEY_MSG, _KEY, "MyName", "my.name", "123-abc"))
    return errs


def label_value(value: str) -> list[str]:
    errs = _too_long(value, 63, "bytes")
    if not _is_value(value):
        errs.append(_regex_error(_VALUE_MSG, _VALUE, "MyValue", "my_value", "12345"))
    return errs


def uri(value: str) -> list[str]:
    try:
        url.url(value)
    except EvalError as err:
        why = str(err).rpartition(": ")[2]
        return [f"parse {_go_quote(value)}: {why}"]
    return []


def _go_quote(text: str) -> str:
    """Go's ``%q`` for the strings a URI check sees (printable text: quotes and backslashes escaped)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


_is_uuid = _full("(?i)[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}")
_is_base64 = _full("(?:[A-Za-z0-9+\\/]{4})*(?:[A-Za-z0-9+\\/]{2}==|[A-Za-z0-9+\\/]{3}=|[A-Za-z0-9+\\/]{4})")
_DATE = re.compile(r"(\d{4})-(\d{2})-(\d{2})", re.ASCII)
_TIME = re.compile(r"([0-9]{2}):([0-9]{2}):([0-9]{2})(.[0-9]+)?(z|([+-][0-9]{2}:[0-9]{2}))", re.ASCII | re.S)


def _is_date(value: str) -> bool:
    """strfmt's ``IsDate``: Go's ``time.Parse("2006-01-02", s)``."""
    m = _DATE.fullmatch(value)
    if m is None:
        return False
    year, month, day = (int(g) for g in m.groups())
    leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
    days = [31, 29 if leap else 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
    return 1 <= month <= 12 and 1 <= day <= days[month - 1]


def _is_datetime(value: str) -> bool:
    """strfmt's ``IsDateTime``: a date, ``t``, and a time (lower-cased; only the first two ``t`` parts count)."""
    if len(value.encode()) < 4:
        return False
    parts = value.lower().split("t")
    if len(parts) < 2 or not _is_date(parts[0]):
        return False
    m = _TIME.match(parts[1])
    if m is None or m.end() != len(parts[1]):
        return False
    return m.group(1) <= "23" and m.group(2) <= "59" and m.group(3) <= "59"


def _flag(test: Callable[[str], bool], message: str) -> Callable[[str], list[str]]:
    return lambda value: [] if test(value) else [message]


FORMATS: dict[str, Callable[[str], list[str]]] = {
    "dns1123Label": dns1123_label,
    "dns1123Subdomain": dns1123_subdomain,
    "dns1035Label": dns1035_label,
    "qualifiedName": qualified_name,
    "dns1123LabelPrefix": _prefixed(dns1123_label),
    "dns1123SubdomainPrefix": _prefixed(dns1123_subdomain),
    "dns1035LabelPrefix": _prefixed(dns1035_label),
    "labelValue": label_value,
    "uri": uri,
    "uuid": _flag(_is_uuid, "does not match the UUID format"),
    "byte": _flag(_is_base64, "invalid base64"),
    "date": _flag(_is_date, "invalid date"),
    "datetime": _flag(_is_datetime, "invalid datetime"),
}


def validate(fmt: NamedFormat, value: str) -> OptionalValue:
    problems = fmt.check(value)
    return OptionalValue(True, problems) if problems else OptionalValue(False)


def named(name: str) -> OptionalValue:
    check = FORMATS.get(name)
    return OptionalValue(True, NamedFormat(name, check)) if check is not None else OptionalValue(False)


def _constant(name: str) -> Callable[[], NamedFormat]:
    value = NamedFormat(name, FORMATS[name])
    return lambda: value


GLOBAL: dict[str, list[Decl]] = {
    **{f"format.{name}": [((), FORMAT, _constant(name))] for name in FORMATS},
    "format.named": [(("string",), ("optional", FORMAT), named)],
}
MEMBER: dict[str, list[Decl]] = {
    "validate": [((FORMAT, "string"), ("optional", ("list", "string")), validate)],
}
