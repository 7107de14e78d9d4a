"""Which allocated claims a solve may give up (units, candidates, movable) and what each budget allows."""

from __future__ import annotations

from typing import Any

import pytest

from gpupolicy.policy.k8s.claim import ResourceClaim
from gpupolicy.solver.evictions import BudgetInfo, PodInfo, Requirement, allowed_now, build_evictions

NS = "ml"


def claim(name: str, *reserved: str | tuple[str, str, str], namespace: str = NS) -> ResourceClaim:
    """An allocated claim reserved for pods by name (uid "uid-<name>"), or (resource, name, uid) consumers."""
    consumers = [
        {"resource": "pods", "name": r, "uid": f"uid-{r}"}
        if isinstance(r, str)
        else {"resource": r[0], "name": r[1], "uid": r[2]}
        for r in reserved
    ]
    status: dict[str, Any] = {
        "allocation": {"devices": {"results": [{"request": "gpu", "driver": "d", "pool": "p", "device": name}]}}
    }
    if consumers:
        status["reservedFor"] = consumers
    return ResourceClaim.model_validate(
        {
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"devices": {"requests": [{"name": "gpu", "exactly": {"deviceClassName": "gpu"}}]}},
            "status": status,
        }
    )


def pod(name: str, namespace: str = NS, **kw: Any) -> PodInfo:
    kw.setdefault("node", "n1")
    kw.setdefault("uid", f"uid-{name}")
    return PodInfo(namespace=namespace, name=name, **kw)


MOVABLE = {"gpupolicy.dev/movable": "true"}


def group(g: str) -> dict[str, str]:
    return {"gpupolicy.dev/group": g}


def want(unit: str, pods: list[str], budgets: tuple[str, ...] = (), movable: bool = False) -> tuple[Any, ...]:
    return (unit, tuple(f"{NS}/{p}" for p in pods), budgets, movable)


UNITS = [
    pytest.param([claim("c1", "a")], [pod("a")], [], {"ml/c1": want("pod:ml/a", ["a"])}, id="one pod one claim"),
    pytest.param(
        [claim("c1", "a", "b"), claim("c2", "b"), claim("c3", "z")],
        [pod("b"), pod("a"), pod("z")],
        [],
        {
            "ml/c1": want("pod:ml/a", ["a", "b"]),
            "ml/c2": want("pod:ml/a", ["a", "b"]),
            "ml/c3": want("pod:ml/z", ["z"]),
        },
        id="a shared claim joins its pods and their other claims",
    ),
    pytest.param(
        [claim("c1", "a"), claim("c2", "b"), claim("c3", "c")],
        [pod("a", labels=group("g")), pod("b", labels=group("g")), pod("c", labels=group("g"), namespace="other")],
        [],
        {"ml/c1": want("group:ml/g", ["a", "b"]), "ml/c2": want("group:ml/g", ["a", "b"])},
        id="a group joins pods of one namespace only (c3's pod is unknown in ml)",
    ),
    pytest.param(
        [claim("c1", "a"), claim("c2", "a", ("deployments", "web", "u1")), claim("c3", "b")],
        [pod("a"), pod("b")],
        [],
        {"ml/c3": want("pod:ml/b", ["b"])},
        id="a claim also reserved by a non-pod keeps the whole unit",
    ),
    pytest.param(
        [claim("c1", "a", "ghost"), claim("c2"), claim("c3", "b")],
        [pod("a"), pod("b")],
        [],
        {"ml/c3": want("pod:ml/b", ["b"])},
        id="unknown pod consumer, or nobody, is never a candidate",
    ),
    pytest.param(
        [claim("c1", ("pods", "a", "uid-old")), claim("c2", ("pods", "renamed", "uid-b"))],
        [pod("a"), pod("b")],
        [],
        {"ml/c2": want("pod:ml/b", ["b"])},
        id="consumers match by uid first; a name with another uid is another pod",
    ),
    pytest.param(
        [claim("c1", "a"), claim("c2", "b"), claim("c3", "c"), claim("c4", "d")],
        [
            pod("a", deleting=True),
            pod("b", node=""),
            pod("c"),
            pod("d", labels=group("g")),
            pod("e", labels=group("g"), deleting=True),
        ],
        [],
        {"ml/c3": want("pod:ml/c", ["c"])},
        id="a deleting or unbound pod keeps its unit, a group member too",
    ),
    pytest.param(
        [claim("c1", "a"), claim("c2", "b"), claim("c3", "c"), claim("c4", "d"), claim("c5", "e", "f")],
        [
            pod("a", annotations=MOVABLE, controlled=True),
            pod("b", annotations=MOVABLE),
            pod("c", controlled=True),
            pod("d", annotations={"gpupolicy.dev/movable": "True"}, controlled=True),
            pod("e", annotations=MOVABLE, controlled=True),
            pod("f", controlled=True),
        ],
        [],
        {
            "ml/c1": want("pod:ml/a", ["a"], movable=True),
            "ml/c2": want("pod:ml/b", ["b"]),
            "ml/c3": want("pod:ml/c", ["c"]),
            "ml/c4": want("pod:ml/d", ["d"]),
            "ml/c5": want("pod:ml/e", ["e", "f"]),
        },
        id="movable needs the annotation exactly and a controller, on every pod",
    ),
    pytest.param(
        [claim("c1", "a"), claim("c2", "b"), claim("c3", "c")],
        [pod("a", labels={"app": "x"}), pod("b", labels={"app": "y"}), pod("c", labels={"app": "x", "tier": "t"})],
        [
            BudgetInfo(NS, "x", match_labels={"app": "x"}),
            BudgetInfo(NS, "not-t", match_expressions=(Requirement("tier", "DoesNotExist"),)),
        ],
        {"ml/c2": want("pod:ml/b", ["b"], ("ml/not-t",)), "ml/c3": want("pod:ml/c", ["c"], ("ml/x",))},
        id="two budgets on one pod: the Eviction API refuses, so no candidate",
    ),
    pytest.param(
        [claim("c1", "a", "b")],
        [pod("a", labels={"app": "x"}), pod("b", labels={"app": "x"})],
        [BudgetInfo(NS, "x", match_labels={"app": "x"})],
        {"ml/c1": want("pod:ml/a", ["a", "b"], ("ml/x", "ml/x"))},
        id="a budget counts every pod of a unit it selects",
    ),
]


@pytest.mark.parametrize(("allocated", "pods", "budgets", "expected"), UNITS)
def test_units(
    allocated: list[ResourceClaim], pods: list[PodInfo], budgets: list[BudgetInfo], expected: dict[str, Any]
) -> None:
    evictions, _ = build_evictions(allocated, pods, budgets)
    got = {k: (e.unit, e.pods, e.budgets, e.movable) for k, e in evictions.items()}
    assert got == expected


def labelled(**labels: str) -> PodInfo:
    return pod("p", labels=labels)


SELECT = [
    (BudgetInfo(NS, "b"), labelled(), True),  # empty selector: every pod of the namespace
    (BudgetInfo(NS, "b"), pod("p", namespace="other"), False),
    (BudgetInfo(NS, "b", selector=False), labelled(), False),  # no selector (policy/v1): no pod
    (BudgetInfo(NS, "b", match_labels={"app": "x"}), labelled(app="x", more="1"), True),
    (BudgetInfo(NS, "b", match_labels={"app": "x"}), labelled(app="y"), False),
    (BudgetInfo(NS, "b", match_labels={"app": "x"}), labelled(), False),
    (BudgetInfo(NS, "b", match_expressions=(Requirement("app", "In", ("x", "y")),)), labelled(app="y"), True),
    (BudgetInfo(NS, "b", match_expressions=(Requirement("app", "In", ("x",)),)), labelled(), False),
    (BudgetInfo(NS, "b", match_expressions=(Requirement("app", "NotIn", ("x",)),)), labelled(), True),
    (BudgetInfo(NS, "b", match_expressions=(Requirement("app", "NotIn", ("x",)),)), labelled(app="x"), False),
    (BudgetInfo(NS, "b", match_expressions=(Requirement("app", "NotIn", ("x",)),)), labelled(app="z"), True),
    (BudgetInfo(NS, "b", match_expressions=(Requirement("app", "Exists"),)), labelled(app=""), True),
    (BudgetInfo(NS, "b", match_expressions=(Requirement("app", "Exists"),)), labelled(), False),
    (BudgetInfo(NS, "b", match_expressions=(Requirement("app", "DoesNotExist"),)), labelled(), True),
    (BudgetInfo(NS, "b", match_expressions=(Requirement("app", "DoesNotExist"),)), labelled(app="x"), False),
    (
        BudgetInfo(NS, "b", match_labels={"a": "1"}, match_expressions=(Requirement("b", "Exists"),)),
        labelled(a="1"),
        False,
    ),
]


@pytest.mark.parametrize(("budget", "pod_", "selected"), SELECT)
def test_selection(budget: BudgetInfo, pod_: PodInfo, selected: bool) -> None:
    assert budget.selects(pod_) is selected


def replicas(n: int, running: int | None = None, deleting: int = 0) -> list[PodInfo]:
    """``n`` pods labelled app=x, the first ``running`` Running (default all), the last ``deleting`` deleting."""
    running = n if running is None else running
    return [
        pod(f"r{i}", labels={"app": "x"}, phase="Running" if i < running else "Pending", deleting=i >= n - deleting)
        for i in range(n)
    ]


def spec(min_available: int | str | None = None, max_unavailable: int | str | None = None) -> BudgetInfo:
    return BudgetInfo(
        NS, "b", match_labels={"app": "x"}, allowed=None, min_available=min_available, max_unavailable=max_unavailable
    )


ALLOWED = [
    pytest.param(BudgetInfo(NS, "b", allowed=2), replicas(1), 2, id="status wins"),
    pytest.param(BudgetInfo(NS, "b", allowed=-1), replicas(1), 0, id="status never below 0"),
    pytest.param(spec(min_available=2), replicas(3), 1, id="minAvailable 2 of 3 healthy"),
    pytest.param(spec(min_available=2), replicas(3, running=2), 0, id="minAvailable counts healthy pods only"),
    pytest.param(spec(min_available=2), replicas(3, deleting=1), 0, id="a deleting pod is not healthy"),
    pytest.param(spec(min_available=5), replicas(3), 0, id="minAvailable above the pods"),
    pytest.param(spec(min_available="50%"), replicas(3), 1, id="minAvailable 50% of 3 rounds up to 2"),
    pytest.param(spec(min_available="34%"), replicas(4), 2, id="minAvailable 34% of 4 rounds up to 2"),
    pytest.param(spec(min_available="0%"), replicas(2), 2, id="minAvailable 0%"),
    pytest.param(spec(max_unavailable=1), replicas(3), 1, id="maxUnavailable 1"),
    pytest.param(spec(max_unavailable=1), replicas(3, running=2), 0, id="maxUnavailable 1 already used up"),
    pytest.param(spec(max_unavailable="50%"), replicas(3), 2, id="maxUnavailable 50% of 3 rounds up to 2"),
    pytest.param(spec(max_unavailable="10%"), replicas(5), 1, id="maxUnavailable 10% of 5 rounds up to 1"),
    pytest.param(spec(max_unavailable=0), replicas(3), 0, id="maxUnavailable 0"),
    pytest.param(spec(max_unavailable=5), replicas(3), 3, id="maxUnavailable above the pods"),
    pytest.param(spec(min_available=0), [], 0, id="no pod selected: nothing expected, nothing allowed"),
    pytest.param(spec(), replicas(3), 0, id="neither set: the controller expects no pod"),
    pytest.param(spec(min_available="x%"), replicas(3), 0, id="a malformed percentage fails safe"),
]


@pytest.mark.parametrize(("budget", "pods", "allowed"), ALLOWED)
def test_allowed(budget: BudgetInfo, pods: list[PodInfo], allowed: int) -> None:
    assert allowed_now(budget, pods) == allowed
    assert build_evictions([], pods, [budget])[1] == {"ml/b": allowed}
