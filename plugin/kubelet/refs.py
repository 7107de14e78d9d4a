"""Claim references as kubelet sends them (namespace, name, UID), checked before they reach a path or a URL.

The API server only stores ResourceClaims whose namespace is a DNS label, whose name is a DNS subdomain and whose
UID it generated itself: an RFC 4122 UUID in its normalized form (36 characters, lowercase hexadecimal, the
``8-4-4-4-12`` groups; the API server's own check of UIDs, ``validateUID``, asks for exactly that and no particular
version: older API servers made version 1 UUIDs, newer ones version 4). Anything else cannot name a claim this
plugin could prepare, so it is refused with the claim's own error before a folder, file or request is made of it.
"""

from __future__ import annotations

import re

DNS_LABEL_MAX = 63
DNS_SUBDOMAIN_MAX = 253
_LABEL = r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?"
_DNS_LABEL = re.compile(_LABEL)
_DNS_SUBDOMAIN = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")
_UID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _shown(value: str) -> str:
    return repr(value) if len(value) <= 64 else f"{value[:64]!r}... ({len(value)} characters)"


def problem(namespace: str, name: str, uid: str) -> str:
    """Why ``namespace``/``name`` (``uid``) cannot be a ResourceClaim's reference, or ``""`` when it can."""
    if not _UID.fullmatch(uid):
        return f"claim UID {_shown(uid)} is not a UUID in lowercase RFC 4122 form"
    if len(namespace) > DNS_LABEL_MAX or not _DNS_LABEL.fullmatch(namespace):
        return f"claim namespace {_shown(namespace)} is not a DNS label (at most {DNS_LABEL_MAX} characters)"
    if len(name) > DNS_SUBDOMAIN_MAX or not _DNS_SUBDOMAIN.fullmatch(name):
        return f"claim name {_shown(name)} is not a DNS subdomain (at most {DNS_SUBDOMAIN_MAX} characters)"
    return ""
