"""ResourceClaims with a status, for the validation differential of the status subresource.

The API server ignores a claim's status on create and checks it on ``PUT .../status``; gpupolicy reads allocated
claims (a cluster's state) with their status and checks it the same way. ``status_cases(seed, namespace)`` yields
claims of one fixed spec (requests ``gpu`` and ``mig`` with subrequests ``small`` and ``big``) with valid statuses
in many shapes and statuses that break each rule of ``validateResourceClaimStatusUpdate``.
"""

from __future__ import annotations

import copy
import random
import uuid
from collections.abc import Iterator

from tests.e2e.objedit import Breaker, at, do, many
from tests.e2e.objgen import API, DRIVER, VARIANTS, Case, Obj

REFS = ("gpu", "mig/small", "mig/big")
SPEC: Obj = {
    "devices": {
        "requests": [
            {"name": "gpu", "exactly": {"deviceClassName": "gpu.example.com"}},
            {
                "name": "mig",
                "firstAvailable": [
                    {"name": "small", "deviceClassName": "mig.example.com"},
                    {"name": "big", "deviceClassName": "gpu.example.com", "count": 2},
                ],
            },
        ]
    }
}
TIME = "2026-01-02T03:04:05Z"


class StatusGen:
    def __init__(self, seed: int, namespace: str) -> None:
        self.r = random.Random(seed)
        self.namespace = namespace
        self.serial = 0
        self.seed = seed  # in the names: claims of several seeds are created side by side

    def uid(self) -> str:
        return str(uuid.UUID(int=self.r.getrandbits(128), version=4))

    def result(self, i: int) -> Obj:
        res: Obj = {
            "request": self.r.choice(REFS),
            "driver": self.r.choice([DRIVER, "a.b"]),
            "pool": self.r.choice(["node-a", "pool/with/slashes"]),
            "device": f"gpu-{i}",
        }
        if self.r.random() < 0.3:
            res["shareID"] = self.uid()
            res["consumedCapacity"] = {"memory": "10Gi", f"{DRIVER}/cores": "10"}
        if self.r.random() < 0.2:
            res["adminAccess"] = self.r.choice([True, False])
        if self.r.random() < 0.2:
            res["tolerations"] = [{"key": "example.com/x", "operator": "Exists", "effect": "NoSchedule"}]
        if self.r.random() < 0.2:
            res["bindingConditions"] = ["example.com/ready"]
            res["bindingFailureConditions"] = ["example.com/failed"]
        return res

    def device_status(self, res: Obj) -> Obj:
        dev: Obj = {k: res[k] for k in ("driver", "pool", "device", "shareID") if k in res}
        if self.r.random() < 0.6:
            dev["conditions"] = [
                {
                    "type": self.r.choice(["Ready", "example.com/Healthy"]),
                    "status": self.r.choice(["True", "False", "Unknown"]),
                    "lastTransitionTime": TIME,
                    "reason": self.r.choice(["Ok", "DeviceReady"]),
                    "message": self.r.choice(["", "all good"]),
                }
            ]
        if self.r.random() < 0.4:
            dev["data"] = {"vendor": {"temperature": 40}}
        if self.r.random() < 0.5:
            dev["networkData"] = {
                "interfaceName": "eth1",
                "ips": self.r.choice([["10.1.2.3/24"], ["10.1.2.3/24", "fd00::1/64"], []]),
                "hardwareAddress": "00:11:22:33:44:55",
            }
        return dev

    def claim(self) -> Obj:
        self.serial += 1
        results = [self.result(i) for i in range(self.r.randint(1, 4))]
        allocation: Obj = {"devices": {"results": results}}
        if self.r.random() < 0.5:
            allocation["devices"]["config"] = [
                {
                    "source": self.r.choice(["FromClaim", "FromClass"]),
                    "requests": [self.r.choice(REFS)],
                    "opaque": {"driver": DRIVER, "parameters": {"a": 1}},
                }
            ]
        if self.r.random() < 0.5:
            allocation["nodeSelector"] = {
                "nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]}]
            }
        if self.r.random() < 0.3:
            allocation["allocationTimestamp"] = TIME
        status: Obj = {"allocation": allocation}
        if self.r.random() < 0.6:
            status["reservedFor"] = [
                {"resource": "pods", "name": f"pod-{i}", "uid": self.uid()} for i in range(self.r.randint(1, 3))
            ]
        if self.r.random() < 0.6:
            unique = {(r["driver"], r["pool"], r["device"], r.get("shareID")): r for r in results}
            status["devices"] = [self.device_status(r) for r in unique.values()]
        return {
            "apiVersion": API,
            "kind": "ResourceClaim",
            "metadata": {"name": f"status-{self.seed}-{self.serial}", "namespace": self.namespace},
            "spec": copy.deepcopy(SPEC),
            "status": status,
        }


def status(obj: Obj) -> Obj:
    s: Obj = obj["status"]
    return s


def result0(obj: Obj) -> Obj:
    r: Obj = obj["status"]["allocation"]["devices"]["results"][0]
    return r


def devstatus0(obj: Obj) -> Obj:
    """The first device status (made for the first result if there is none)."""
    st = status(obj)
    if not st.get("devices"):
        res = result0(obj)
        st["devices"] = [{k: res[k] for k in ("driver", "pool", "device", "shareID") if k in res}]
    d: Obj = st["devices"][0]
    return d


def config0(obj: Obj) -> Obj:
    devices = status(obj)["allocation"]["devices"]
    if not devices.get("config"):
        devices["config"] = [{"source": "FromClaim", "opaque": {"driver": DRIVER, "parameters": {}}}]
    c: Obj = devices["config"][0]
    return c


def condition0(obj: Obj) -> Obj:
    dev = devstatus0(obj)
    cond: Obj = {"type": "Ready", "status": "True", "lastTransitionTime": TIME, "reason": "Ok", "message": ""}
    dev["conditions"] = [cond]
    return cond


def network(obj: Obj) -> Obj:
    net: Obj = {"interfaceName": "eth0"}
    devstatus0(obj)["networkData"] = net
    return net


def _rules() -> Iterator[tuple[str, Breaker]]:
    consumer = lambda o: status(o).setdefault("reservedFor", [{"resource": "pods", "name": "p", "uid": "u-1"}])[0]  # noqa: E731
    yield (
        "reserved_without_allocation",
        do(
            lambda o: (
                status(o).update(reservedFor=[{"resource": "pods", "name": "p", "uid": "1"}], devices=[])
                or status(o).pop("allocation")
            )
        ),
    )
    yield "reserved_field_missing", at(consumer, "uid", "", ...)
    yield "reserved_resource_missing", at(consumer, "resource", "", ...)
    yield (
        "reserved_duplicate_uid",
        do(
            lambda o: status(o).update(
                reservedFor=[{"resource": "pods", "name": f"p{i}", "uid": "same"} for i in range(2)]
            )
        ),
    )
    yield (
        "reserved_too_many",
        do(
            lambda o: status(o).update(
                reservedFor=many(257, lambda k: {"resource": "pods", "name": "p", "uid": f"u{k}"})
            )
        ),
    )
    yield "result_request_unknown", at(result0, "request", "nope", "mig", "gpu/small", "mig/nope")
    yield "result_driver", at(result0, "driver", "Bad_Driver", "", "nodots")
    yield "result_pool", at(result0, "pool", "", "Pool_A", "a//b")
    yield "result_device", at(result0, "device", "GPU-0", "", "a" * 64)
    yield "result_share_id", at(result0, "shareID", "not-a-uuid", "0F8FAD5B-D9CB-469F-A165-70867728950E", "")
    yield "result_binding", at(result0, "bindingConditions", ["a", "a"], ["bad name!"], many(5, lambda k: f"c{k}"))
    yield "result_toleration", at(result0, "tolerations", [{"key": "bad key"}], [{"operator": "Exists", "value": "v"}])
    yield (
        "results_too_many",
        do(
            lambda o: (
                status(o)["allocation"]["devices"].update(
                    results=many(33, lambda k: {"request": "gpu", "driver": DRIVER, "pool": "p", "device": f"d{k}"})
                )
                or status(o).pop("devices", None)
            )
        ),
    )
    yield "config_source", at(config0, "source", "FromNowhere", "", ...)
    yield "config_request_unknown", at(config0, "requests", ["nope"], ["gpu", "gpu"])
    yield "config_opaque", at(config0, "opaque", None, {"driver": "Bad_Driver", "parameters": {}})
    yield (
        "config_too_many",
        do(
            lambda o: status(o)["allocation"]["devices"].update(
                config=many(65, lambda k: {"source": "FromClass", "opaque": {"driver": DRIVER, "parameters": {}}})
            )
        ),
    )
    yield (
        "allocation_node_selector",
        do(
            lambda o: status(o)["allocation"].update(
                nodeSelector={"nodeSelectorTerms": [{"matchExpressions": [{"key": "bad key", "operator": "Exists"}]}]}
            )
        ),
    )
    yield "device_status_not_allocated", at(devstatus0, "device", "other-device")
    yield "device_status_share_id", at(devstatus0, "shareID", "not-a-uuid")
    yield "device_status_duplicate", do(lambda o: status(o).update(devices=[devstatus0(o), dict(devstatus0(o))]))
    yield (
        "conditions_too_many",
        do(
            lambda o: devstatus0(o).update(
                conditions=many(
                    9, lambda k: {"type": f"T{k}", "status": "True", "lastTransitionTime": TIME, "reason": "R"}
                )
            )
        ),
    )
    yield "condition_status", at(condition0, "status", "Yes", "")
    yield "condition_type", at(condition0, "type", "bad type!", "")
    yield "condition_reason", at(condition0, "reason", "bad reason", "", "1abc")
    yield "condition_time", at(condition0, "lastTransitionTime", ...)
    yield "condition_duplicate_type", do(lambda o: devstatus0(o).update(conditions=[condition0(o), condition0(o)]))
    yield "condition_message_too_long", at(condition0, "message", "m" * 32769)
    yield "condition_observed_generation", at(condition0, "observedGeneration", -1)
    yield "data_not_object", at(devstatus0, "data", [1], "text", 3)
    yield "data_too_long", at(devstatus0, "data", {"blob": "x" * (10 * 1024)})
    yield "network_interface_too_long", at(network, "interfaceName", "i" * 257)
    yield "network_hardware_too_long", at(network, "hardwareAddress", "h" * 129)
    yield "network_ips_too_many", at(network, "ips", [f"10.0.0.{k}/24" for k in range(17)])
    yield "network_ip_format", at(network, "ips", ["10.0.0.1"], ["not-an-ip/24"], ["10.0.0.1/33"])
    yield "network_ip_duplicate", at(network, "ips", ["10.0.0.1/24", "10.0.0.1/24"])


def status_cases(seed: int, namespace: str, valid: int = 40) -> list[Case]:
    gen = StatusGen(seed, namespace)
    cases = [Case(f"status/valid/{i}", gen.claim()) for i in range(valid)]
    for rule, breaker in _rules():
        for variant in range(max(VARIANTS, getattr(breaker, "variants", 0))):
            obj = gen.claim()
            breaker(obj, gen.r)
            cases.append(Case(f"status/{rule}/{variant}", obj, broken=rule))
    return cases
