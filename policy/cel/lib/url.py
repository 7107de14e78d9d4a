"""Kubernetes' URL CEL library (``url("https://example.com:80/p").getPort() == "80"``).

Validation follows Go's ``url.ParseRequestURI`` as Kubernetes does: an absolute URI with a
scheme, or an absolute path; a numeric port; valid ``%`` escapes before the query; no control characters or
spaces in the host. Components are read with ``urllib.parse``; schemes are lower-cased as Go does.
"""

from __future__ import annotations

import re
import urllib.parse

from gpupolicy.policy.cel.core import EvalError

_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:")
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
# Go's shouldEscape(c, encodePath) keeps these (and letters and digits); validEncoded also accepts !'()*[] and %
_PATH_SAFE = "$&+,/:;=@-_.~"
_RAW_PATH_OK = re.compile(r"[A-Za-z0-9\-_.~$&+,/:;=@!'()*\[\]%]*")


class URL:
    __slots__ = ("parts",)

    def __init__(self, parts: urllib.parse.SplitResult) -> None:
        self.parts = parts

    def __eq__(self, other: object) -> bool:
        return isinstance(other, URL) and other.parts == self.parts

    def __hash__(self) -> int:
        return hash(self.parts)

    def __str__(self) -> str:
        return urllib.parse.urlunsplit(self.parts)


def _error(text: str, why: str) -> EvalError:
    return EvalError(f"URL parse error during conversion from string: parse {text!r}: {why}")


def url(text: str) -> URL:
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in text):
        raise _error(text, "net/url: invalid control character in URL")
    if not (_SCHEME.match(text) or text.startswith("/")):
        raise _error(text, "invalid URI for request")
    if _BAD_ESCAPE.search(text.split("#", 1)[0].split("?", 1)[0]):  # Go does not check the query's escapes
        raise _error(text, "invalid URL escape")
    parts = urllib.parse.urlsplit(text)
    host = parts.netloc.rpartition("@")[2]
    if " " in host:
        raise _error(text, 'invalid character " " in host name')
    port = _port(host)
    if port and not port.isdigit():
        raise _error(text, f"invalid port {':' + port!r} after host")
    return URL(parts._replace(scheme=parts.scheme.lower()))


def _port(host: str) -> str:
    if host.startswith("["):
        _, _, rest = host.partition("]")
        return rest[1:] if rest.startswith(":") else ""
    return host.split(":", 1)[1] if ":" in host else ""


def is_url(text: str) -> bool:
    try:
        url(text)
    except EvalError:
        return False
    return True


def host(u: URL) -> str:
    return u.parts.netloc.rpartition("@")[2]


def hostname(u: URL) -> str:
    h = host(u)
    if h.startswith("["):
        return h[1:].partition("]")[0]
    return h.split(":", 1)[0]


def port(u: URL) -> str:
    return _port(host(u))


def escaped_path(u: URL) -> str:
    """Go's ``EscapedPath``: the path as written when it is a valid encoding, else the path escaped again."""
    raw = u.parts.path
    if _RAW_PATH_OK.fullmatch(raw):
        return raw
    return urllib.parse.quote(urllib.parse.unquote(raw), safe=_PATH_SAFE)


def query(u: URL) -> dict[str, list[str]]:
    """Go's ``URL.Query``: ``&``-separated pairs; a pair with a ``;`` or a bad escape is skipped, as is an empty one."""
    out: dict[str, list[str]] = {}
    for pair in u.parts.query.split("&"):
        if ";" in pair or not pair or _BAD_ESCAPE.search(pair):
            continue
        key, _, value = pair.partition("=")
        out.setdefault(urllib.parse.unquote_plus(key), []).append(urllib.parse.unquote_plus(value))
    return out
