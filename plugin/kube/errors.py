"""One error tree for every Kubernetes API call, as kopf's ``_cogs/clients/errors.py`` has it.

:class:`ApiError` is the base; :class:`NotFound` (404), :class:`Conflict` (409: the resourceVersion moved on, or
the object already exists), :class:`TooManyRequests` (429, with the server's ``Retry-After``; its subclass
:class:`BudgetExceeded` when an eviction would violate a PodDisruptionBudget) and
:class:`Unreachable` (no HTTP answer: connection, TLS, timeout) are what callers tell apart. Each carries the
HTTP status and the server's ``Status`` object when the body was one. ``code`` is a stable string for logs,
Events and the CLI's diagnostics; ``str(error)`` is ``"<code>: <message>"``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, ClassVar

Obj = dict[str, Any]


class ApiError(Exception):
    """An API call failed with an HTTP answer none of the subclasses names (``code`` ``api_error``)."""

    code: ClassVar[str] = "api_error"

    def __init__(self, message: str, *, http_status: int = 0, status: Obj | None = None) -> None:
        super().__init__(f"{self.code}: {message}")
        self.message = message
        self.http_status = http_status
        self.status = status
        """The ``Status`` object the API server sent (``kind: Status``), or None."""

    @property
    def reason(self) -> str:
        """The Status ``reason`` (``NotFound``, ``Conflict``, ``AlreadyExists``, ``Forbidden`` …), or ""."""
        return str((self.status or {}).get("reason", ""))


class NotFound(ApiError):
    code = "not_found"


class Conflict(ApiError):
    code = "conflict"


class TooManyRequests(ApiError):
    """429: the server (API Priority and Fairness, or a webhook) asks the client to come back later."""

    code = "too_many_requests"

    def __init__(
        self, message: str, *, http_status: int = 429, status: Obj | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message, http_status=http_status, status=status)
        self.retry_after = retry_after
        """Seconds the server asked to wait (``Retry-After``), or None when it named none."""


class BudgetExceeded(TooManyRequests):
    """429 from the Eviction API because a PodDisruptionBudget allows no disruption now (the Status names the budget
    among its causes, type ``DisruptionBudget``), not because the server is busy."""

    code = "disruption_budget"


class Unreachable(ApiError):
    code = "unreachable"


BY_STATUS: dict[int, type[ApiError]] = {404: NotFound, 409: Conflict, 429: TooManyRequests}
BY_CODE: dict[str, type[ApiError]] = {
    cls.code: cls for cls in (ApiError, NotFound, Conflict, TooManyRequests, BudgetExceeded, Unreachable)
}


def retry_after(headers: Mapping[str, str]) -> float | None:
    """``Retry-After`` in seconds (the API server sends whole seconds); None when absent or not a number."""
    value = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
    try:
        seconds = float(value) if value is not None else None
    except ValueError:
        return None
    return seconds if seconds is not None and seconds >= 0 else None


def from_response(http_status: int, reason: str | None, body: bytes, headers: Mapping[str, str]) -> ApiError:
    """The error for an HTTP answer of 400 or more: the class by status, the message from the Status body."""
    status: Obj | None = None
    text = body[:2000].decode("utf-8", "replace")
    try:
        decoded = json.loads(body)
        if isinstance(decoded, dict) and decoded.get("kind") == "Status":
            status = decoded
    except ValueError:
        pass
    detail = str(status.get("message", "")) if status else text[:300]
    message = f"{http_status} {reason or ''}".rstrip() + f": {detail}"
    cls = BY_STATUS.get(http_status, ApiError)
    if cls is TooManyRequests:
        causes = ((status or {}).get("details") or {}).get("causes") or []
        budget = any(isinstance(c, dict) and c.get("type") == "DisruptionBudget" for c in causes)
        if budget:  # the budget's own words (which budget, how many healthy pods) say more than the summary
            message += "".join(f" ({c.get('message')})" for c in causes if isinstance(c, dict) and c.get("message"))
        return (BudgetExceeded if budget else TooManyRequests)(message, status=status, retry_after=retry_after(headers))
    return cls(message, http_status=http_status, status=status)


def error(code: str, message: str) -> ApiError:
    """An error of the class named by ``code`` (``not_found``, ``conflict`` …): for fakes and stand-ins."""
    return BY_CODE.get(code, ApiError)(message)
