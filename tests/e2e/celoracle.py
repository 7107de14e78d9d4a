"""The test bed's CEL oracle (``tests/e2e/testbed/celoracle``, built by ``scripts/build-testbed``): Kubernetes' own
code judging device selectors, for differential tests of gpupolicy's CEL (issue 16).

:func:`judge` runs the binary once for many expressions over a set of ResourceSlices (wire dicts, resource.k8s.io/v1)
and returns, per expression, the API server's verdict on a new DeviceClass selector (:class:`Compile`) and the
structured allocator's result on every device (:class:`Matches` or :class:`EvalError`, keyed ``pool/device``).
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ORACLE = "celoracle"
TIMEOUT_S = 120.0


class OracleError(RuntimeError):
    """The oracle could not run or its answer could not be read."""


@dataclass(frozen=True)
class Compile:
    """The API server's verdict on a new selector: accepted, or refused with the validation's error text."""

    ok: bool
    error: str
    cost: int  # the NewExpressions cost estimate; 2**64 - 1 when the compile failed


@dataclass(frozen=True)
class Matches:
    value: bool


@dataclass(frozen=True)
class EvalError:
    """A run-time error, with the text the allocator puts after ``CEL runtime error:``."""

    message: str


DeviceResult = Matches | EvalError


@dataclass(frozen=True)
class Verdict:
    expression: str
    compile: Compile
    # The allocator's compile (StoredExpressions environment) failed: no device was evaluated.
    eval_compile_error: str
    devices: Mapping[str, DeviceResult]


def _device_result(raw: Mapping[str, Any]) -> DeviceResult:
    if "error" in raw:
        return EvalError(str(raw["error"]))
    return Matches(bool(raw["matches"]))


def _verdict(raw: Mapping[str, Any]) -> Verdict:
    comp = raw["compile"]
    return Verdict(
        expression=raw["expression"],
        compile=Compile(bool(comp["ok"]), comp.get("error", ""), int(comp["cost"])),
        eval_compile_error=raw.get("evalCompileError", ""),
        devices={key: _device_result(value) for key, value in (raw.get("devices") or {}).items()},
    )


def judge(bin_dir: Path, expressions: Sequence[str], slices: Sequence[Mapping[str, Any]]) -> list[Verdict]:
    """One oracle process for all ``expressions`` over the devices of ``slices``; verdicts in input order."""
    document = json.dumps({"expressions": list(expressions), "slices": list(slices)})
    try:
        proc = subprocess.run(
            [str(bin_dir / ORACLE)], input=document, capture_output=True, text=True, timeout=TIMEOUT_S, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise OracleError(f"{ORACLE} did not run: {exc}") from exc
    if proc.returncode != 0:
        raise OracleError(f"{ORACLE} exited {proc.returncode}: {proc.stderr.strip()}")
    try:
        results = json.loads(proc.stdout)["results"]
        verdicts = [_verdict(raw) for raw in results]
    except (ValueError, KeyError, TypeError) as exc:
        raise OracleError(f"{ORACLE} answered something unreadable: {exc}") from exc
    if [v.expression for v in verdicts] != list(expressions):
        raise OracleError(f"{ORACLE} answered for other expressions than asked")
    return verdicts
