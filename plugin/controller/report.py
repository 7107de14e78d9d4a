"""Telling users why a pod stays gated: a pod condition and an Event carrying the solver's explanation.

The condition is ``gpupolicy.dev/Placement``: ``False`` with the reason (the explanation's code in CamelCase) and
the explanation as ``gpupolicy solve --explain`` prints it, one ``ns/claim: code: message`` line per claim;
``True``/``Placed`` once placed. The condition is written when the explanation changes, the Event when its
reason does, so a pod retried on every inventory change does not collect a new Event each time.
"""

from __future__ import annotations

import copy
import uuid

from gpupolicy.plugin.controller.snapshot import ClaimRef, ref
from gpupolicy.plugin.kube import Api, Conflict, NotFound, Obj
from gpupolicy.plugin.timefmt import kube_time
from gpupolicy.solver.result import Reason

CONDITION = "gpupolicy.dev/Placement"
COMPONENT = "gpupolicy-controller"
MAX_MESSAGE = 4000
RETRIES = 5


def camel(code: str) -> str:
    return "".join(part.capitalize() for part in code.split("_")) or "Unknown"


def explanation(reasons: list[tuple[ClaimRef, Reason]]) -> str:
    """The lines ``gpupolicy solve --explain`` prints for these claims."""
    lines = [f"{ns}/{name}: {r.code}: {r.message}" for (ns, name), r in reasons]
    text = "\n".join(lines)
    return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 1] + "…"


def condition(pod: Obj) -> Obj | None:
    for cond in (pod.get("status") or {}).get("conditions") or []:
        if cond.get("type") == CONDITION:
            return dict(cond)
    return None


def set_condition(api: Api, pod: Obj, status: str, reason: str, message: str) -> bool:
    """Write the condition unless it already says this; True when something was written."""
    for _ in range(RETRIES):
        old = condition(pod)
        if old and (old.get("status"), old.get("reason"), old.get("message")) == (status, reason, message):
            return False
        pod = copy.deepcopy(pod)
        conditions = [c for c in pod.setdefault("status", {}).get("conditions") or [] if c.get("type") != CONDITION]
        since = old["lastTransitionTime"] if old and old.get("status") == status else kube_time()
        conditions.append(
            {"type": CONDITION, "status": status, "reason": reason, "message": message, "lastTransitionTime": since}
        )
        pod["status"]["conditions"] = conditions
        try:
            api.update("pods", pod, status=True)
            return True
        except NotFound:
            return False
        except Conflict:
            pod = api.get("pods", *ref(pod))
    return False


def event(api: Api, pod: Obj, kind: str, reason: str, message: str) -> None:
    ns, name = ref(pod)
    now = kube_time()
    api.create(
        "events",
        {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": f"{name}.{uuid.uuid4().hex[:12]}", "namespace": ns},
            "involvedObject": {
                "apiVersion": "v1",
                "kind": "Pod",
                "name": name,
                "namespace": ns,
                "uid": pod["metadata"].get("uid", ""),
            },
            "reason": reason,
            "message": message,
            "type": kind,
            "source": {"component": COMPONENT},
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        },
    )


def unplaced(api: Api, pod: Obj, reasons: list[tuple[ClaimRef, Reason]]) -> bool:
    """Condition False when the explanation changed, plus a Warning event when its reason did (explanations name
    other claims, which change on a busy cluster; one event per reason keeps the event stream readable)."""
    code = reasons[0][1].code if reasons else "unknown"
    message = explanation(reasons)
    old = condition(pod)
    if not set_condition(api, pod, "False", camel(code), message):
        return False
    if old is None or (old.get("status"), old.get("reason")) != ("False", camel(code)):
        event(api, pod, "Warning", "FailedPlacement", message)
    return True


def placed(api: Api, pod: Obj) -> None:
    """Flip an earlier False condition to True (pods placed at the first try get no condition write)."""
    old = condition(pod)
    if old is not None and old.get("status") != "True":
        set_condition(api, pod, "True", "Placed", "claims allocated by the gpupolicy controller")
