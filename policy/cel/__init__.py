"""Kubernetes-compatible CEL for device selectors: compile once, evaluate many devices fast.

The public API is :func:`compile_expression` and the :class:`Program` it returns; the modules
under this package are its phases (see ``docs/cel.md``).
"""

from gpupolicy.policy.cel.program import (
    COST_LIMIT,
    EXPRESSION_MAX_BYTES,
    RUNTIME_COST_LIMIT,
    CelRuntimeError,
    Program,
    compile_expression,
    device_value,
)

__all__ = [
    "COST_LIMIT",
    "EXPRESSION_MAX_BYTES",
    "RUNTIME_COST_LIMIT",
    "CelRuntimeError",
    "Program",
    "compile_expression",
    "device_value",
]
