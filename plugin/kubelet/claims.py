"""What one claim of a NodePrepareResources / NodeUnprepareResources call is, and what it gets back: the reference
kubelet sends (checked before any path or URL is made of it), the result, and the error (a message for kubelet, a
stable code for the metrics). Both ways of preparing (:mod:`gpupolicy.plugin.kubelet.prepare` on threads,
:mod:`gpupolicy.plugin.kubelet.prepare_loop` on the event loop) and the gRPC server speak these."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from gpupolicy.plugin.kubelet import refs
from gpupolicy.plugin.kubelet.checkpoint import PreparedDevice
from gpupolicy.plugin.kubelet.metrics import ErrorCode, PluginMetrics
from gpupolicy.plugin.kubelet.nvml.types import NvmlError
from gpupolicy.plugin.kubelet.sharing import CommandError

# A claim that failed is logged as prepare/unprepare has always logged it (log filters select on the name).
log = logging.getLogger("gpupolicy.plugin.kubelet.prepare")


@dataclass(frozen=True)
class ClaimRef:
    namespace: str
    uid: str
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name} ({self.uid})"


@dataclass(frozen=True)
class PrepareResult:
    devices: tuple[PreparedDevice, ...] = ()
    error: str = ""


class ClaimError(Exception):
    """Preparing one claim failed; the message goes back to kubelet, the code into the metrics."""

    def __init__(self, message: str, code: ErrorCode) -> None:
        super().__init__(message)
        self.code = code


def check_ref(claim: ClaimRef) -> None:
    """Refuse a reference no API server makes, before its UID is part of a path or its name of a URL."""
    problem = refs.problem(claim.namespace, claim.name, claim.uid)
    if problem:
        raise ClaimError(f"invalid claim reference: {problem}", ErrorCode.INVALID_CLAIM_REF)


def prepare_failure(claim: ClaimRef, exc: Exception, metrics: PluginMetrics) -> PrepareResult:
    """The result of a claim whose prepare raised (call it while handling ``exc``: it logs the traceback)."""
    if isinstance(exc, ClaimError):
        log.warning("prepare %s failed: %s", claim, exc, extra={"claim": str(claim), "code": exc.code.value})
        metrics.failed("prepare", exc.code)
        return PrepareResult(error=str(exc))
    code = ErrorCode.INTERNAL
    log.exception("prepare %s failed unexpectedly", claim, extra={"claim": str(claim), "code": code.value})
    metrics.failed("prepare", code)
    return PrepareResult(error=f"internal error: {type(exc).__name__}: {exc}")


def unprepare_failure(claim: ClaimRef, exc: Exception, metrics: PluginMetrics) -> str:
    """The error of a claim whose unprepare raised (while handling ``exc``); kubelet retries the call."""
    if isinstance(exc, ClaimError):
        log.warning("unprepare %s failed: %s", claim, exc, extra={"claim": str(claim), "code": exc.code.value})
        metrics.failed("unprepare", exc.code)
        return str(exc)
    if isinstance(exc, NvmlError | CommandError | OSError):
        code = ErrorCode.TEARDOWN_FAILED
        log.warning("unprepare %s failed: %s", claim, exc, extra={"claim": str(claim), "code": code.value})
        metrics.failed("unprepare", code)
        return f"unprepare failed (will be retried): {exc}"
    code = ErrorCode.INTERNAL
    log.exception("unprepare %s failed unexpectedly", claim, extra={"claim": str(claim), "code": code.value})
    metrics.failed("unprepare", code)
    return f"internal error: {type(exc).__name__}: {exc}"
