"""Kubernetes-compatible CEL for device selectors: compile once, evaluate many devices fast.

The API is :func:`compile_expression`, the :class:`Program` it returns, and :func:`estimate_cost`
(``program``); other code imports it from here, never from the modules below, which are the phases,
laid out as in cel-go:

* ``syntax/``: ``parser`` runs cel-python's grammar with lark (the only module that imports the CEL
  engine) and ``converter`` turns its parse tree into our syntax tree (``ast``), macros expanded;
* ``checker/``: one pass that infers static types and builds the evaluation closures (``check``), for
  operator and function calls (``calls``) and the macros (``comprehensions``); then the API server's
  cost estimate over the typed tree (``cost``: cel-go's ``checker.Cost`` with Kubernetes' estimators);
* ``lib/``: the function libraries (the overload table in ``functions``; ``strings``, ``regex``,
  ``url``, ``net``); ``runtime/``: run-time values, equality and ordering (``values``), operators (``ops``);
* ``projection``: what an expression reads from ``device``, and the result-cache key built from it;
  ``environments``: the declared variables and their values;
* ``core``: what every phase shares: static types, errors, the checked node and the cost meter.

``.importlinter`` keeps these layers pointing one way, with no cycle (see ``docs/cel.md``).
"""

from gpupolicy.policy.cel.program import (
    COST_LIMIT,
    EXPRESSION_MAX_BYTES,
    RUNTIME_COST_LIMIT,
    CelRuntimeError,
    Program,
    compile_expression,
    device_value,
    estimate_cost,
)

__all__ = [
    "COST_LIMIT",
    "EXPRESSION_MAX_BYTES",
    "RUNTIME_COST_LIMIT",
    "CelRuntimeError",
    "Program",
    "compile_expression",
    "device_value",
    "estimate_cost",
]
