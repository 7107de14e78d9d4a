"""Name formats the API server checks, as functions returning the problems found (empty = valid).

The rules follow ``k8s.io/apimachinery/pkg/util/validation`` and the DRA validation code:
DNS labels and subdomains, C identifiers, label keys and values, driver names (case-insensitive
subdomains of at most 63 characters), pool names (slash-separated subdomains) and the qualified
names of attributes and capacities.
"""

from __future__ import annotations

import ipaddress
import re

from gpupolicy.policy.k8s import limits

_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_LABEL = re.compile(rf"^{_LABEL}$")
_DNS1123_SUBDOMAIN = re.compile(rf"^{_LABEL}(\.{_LABEL})*$")
_C_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_QUALIFIED_NAME_PART = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")

# semver.org 2.0.0, as the API server's regular expression has it.
_NUM = r"(0|[1-9]\d*)"
_PRE = r"(0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)"
_BUILD = r"[0-9a-zA-Z-]+"
SEMVER_RE = re.compile(rf"^{_NUM}\.{_NUM}\.{_NUM}(-{_PRE}(\.{_PRE})*)?(\+{_BUILD}(\.{_BUILD})*)?$")


def dns1123_label(value: str) -> list[str]:
    problems: list[str] = []
    if len(value) > limits.DNS1123_LABEL_MAX:
        problems.append(f"must be no more than {limits.DNS1123_LABEL_MAX} characters")
    if not _DNS1123_LABEL.fullmatch(value):
        problems.append(
            "a DNS-1123 label must consist of lower case alphanumeric characters or '-', "
            "and must start and end with an alphanumeric character"
        )
    return problems


def dns1123_subdomain(value: str) -> list[str]:
    problems: list[str] = []
    if len(value) > limits.DNS1123_SUBDOMAIN_MAX:
        problems.append(f"must be no more than {limits.DNS1123_SUBDOMAIN_MAX} characters")
    if not _DNS1123_SUBDOMAIN.fullmatch(value):
        problems.append(
            "a DNS-1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
            "and must start and end with an alphanumeric character"
        )
    return problems


def path_segment_name(value: str) -> list[str]:
    """The generic name rule of kinds without their own (``content.IsPathSegmentName``): usable as a URL segment."""
    if value in (".", ".."):
        return [f"may not be {value!r}"]
    return [f"may not contain {bad!r}" for bad in ("/", "%") if bad in value]


def c_identifier(value: str) -> list[str]:
    problems: list[str] = []
    if len(value) > limits.DEVICE_MAX_ID_LENGTH:
        problems.append(f"must be no more than {limits.DEVICE_MAX_ID_LENGTH} characters")
    if not _C_IDENTIFIER.fullmatch(value):
        problems.append(
            "a valid C identifier must start with alphabetic character or '_', "
            "followed by a string of alphanumeric characters or '_'"
        )
    return problems


def driver_name(value: str) -> list[str]:
    """A CSI-style driver name: a DNS subdomain (case-insensitive) of at most 63 characters."""
    if not value:
        return ["must not be empty"]
    problems: list[str] = []
    if len(value) > limits.DRIVER_NAME_MAX:
        problems.append(f"must be no more than {limits.DRIVER_NAME_MAX} characters")
    problems += [p for p in dns1123_subdomain(value.lower()) if "no more than" not in p]
    return problems


def pool_name(value: str) -> list[str]:
    """One or more DNS subdomains separated by slashes, at most 253 characters in all."""
    if not value:
        return ["must not be empty"]
    problems: list[str] = []
    if len(value) > limits.POOL_NAME_MAX:
        problems.append(f"must be no more than {limits.POOL_NAME_MAX} characters")
    for part in value.split("/"):
        problems += [p for p in dns1123_subdomain(part) if p not in problems]
    return problems


def qualified_name(value: str, *, lower_case_domain: bool = False) -> list[str]:
    """An attribute or capacity name: ``id`` or ``domain/id`` (domain a driver name, id a C identifier).

    As ``validateQualifiedName`` (k8s 1.37): a name with more than one slash is not checked at all (a known gap
    in Kubernetes, kept for compatibility with stored objects), so it is valid. ``lower_case_domain``: the
    domain is a lower-case DNS subdomain of at most 63 characters (the declarative
    ``k8s-resource-fully-qualified-name`` format) instead of a case-insensitive driver name."""
    parts = value.split("/")
    if len(parts) == 1:
        return c_identifier(parts[0])
    if len(parts) > 2:
        return []
    domain, ident = parts
    problems: list[str] = []
    if not domain:
        problems.append("the domain must not be empty")
    elif lower_case_domain:
        if len(domain) > limits.DEVICE_MAX_DOMAIN_LENGTH:
            problems.append(f"the domain must be no more than {limits.DEVICE_MAX_DOMAIN_LENGTH} characters")
        problems += dns1123_subdomain(domain)
    else:
        problems += driver_name(domain)
    problems += ["the name must not be empty"] if not ident else c_identifier(ident)
    return problems


def fully_qualified_name(value: str) -> list[str]:
    """``matchAttribute``/``distinctAttribute``: a qualified name with a lower-case domain (declarative
    ``ResourceFullyQualifiedName``, which the API server applies instead of the case-insensitive rule)."""
    problems = qualified_name(value, lower_case_domain=True)
    if "/" not in value:
        problems.append("a fully qualified name must be a domain and a name separated by a slash")
    return problems


def label_key(value: str) -> list[str]:
    """A label key (Kubernetes "qualified name"): optional DNS-subdomain prefix, a slash, a name ≤63."""
    if not value:
        return ["name part must be non-empty"]
    if value.count("/") > 1:
        return ["a qualified name must consist of an optional prefix, a slash and a name"]
    prefix, sep, name = value.rpartition("/")
    problems: list[str] = []
    if sep:
        if not prefix:
            problems.append("prefix part must be non-empty")
        else:
            problems += [f"prefix part {p}" for p in dns1123_subdomain(prefix)]
    if not name:
        problems.append("name part must be non-empty")
    elif len(name) > limits.QUALIFIED_NAME_MAX:
        problems.append(f"name part must be no more than {limits.QUALIFIED_NAME_MAX} characters")
    if name and not _QUALIFIED_NAME_PART.fullmatch(name):
        problems.append(
            "name part must consist of alphanumeric characters, '-', '_' or '.', "
            "and must start and end with an alphanumeric character"
        )
    return problems


def label_value(value: str) -> list[str]:
    problems: list[str] = []
    if len(value) > limits.LABEL_VALUE_MAX:
        problems.append(f"must be no more than {limits.LABEL_VALUE_MAX} characters")
    if not _LABEL_VALUE.fullmatch(value):
        problems.append(
            "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', "
            "and must start and end with an alphanumeric character"
        )
    return problems


def is_semver(value: str) -> bool:
    return SEMVER_RE.fullmatch(value) is not None


def is_uuid(value: str) -> bool:
    """RFC 4122 normalized form: 36 lower-case hexadecimal characters and dashes."""
    return re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", value) is not None


# Go's regexp ``$`` matches only at the end of the text; Python's ``match`` with ``$`` also accepts a final
# newline, so every pattern here is applied with ``fullmatch``.
_CONDITION_REASON = re.compile(r"[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?")


def is_condition_reason(value: str) -> bool:
    """metav1 ``IsValidConditionReason``."""
    return _CONDITION_REASON.fullmatch(value) is not None


def interface_address(value: str) -> str | None:
    """Why ``value`` is not an IP address with prefix length in canonical form (``10.9.8.7/24``,
    ``2001:db8::1/64``), as ``IsValidInterfaceAddress`` requires; None when it is."""
    if "/" not in value:
        return "must be a valid address in CIDR form, (e.g. 10.9.8.7/24 or 2001:db8::1/64)"
    try:
        interface = ipaddress.ip_interface(value)
    except ValueError:
        return "must be a valid address in CIDR form, (e.g. 10.9.8.7/24 or 2001:db8::1/64)"
    canonical = f"{interface.ip}/{interface.network.prefixlen}"
    return None if value == canonical else f"must be in canonical form ({canonical!r})"
