"""A seeded generator of resource.k8s.io/v1 objects for the validation differential.

``generate(seed)`` returns :class:`Case` s: valid DeviceClasses, ResourceClaims, ResourceClaimTemplates and
ResourceSlices in many shapes, objects at every limit (:mod:`tests.e2e.objlimits`), and for each rule the API
server checks mutations of valid objects that break it (:mod:`tests.e2e.objbreak`, which also pulls in the slice
rules and the spellings of quantities and names). The same seed always gives the same objects, so a
disagreement found in CI can be reproduced by its case id (the test prints the object too).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

Obj = dict[str, Any]
API = "resource.k8s.io/v1"
DRIVER = "gpu.example.com"
DOMAIN = "gpu.example.com"
ADMIN_NAMESPACE_LABEL = "resource.kubernetes.io/admin-access"
VARIANTS = 3  # mutations of each rule, each of another valid object (and the next of the breaker's values)


@dataclass(frozen=True)
class Case:
    """One object to judge; ``broken`` names the rule a mutation breaks (None for generated valid objects)."""

    id: str
    obj: Obj
    broken: str | None = None


class Gen:
    """Random building blocks, all drawn from one seeded ``random.Random``."""

    def __init__(self, seed: int, namespace: str) -> None:
        self.r = random.Random(seed)
        self.namespace = namespace
        self.serial = 0

    def name(self, prefix: str) -> str:
        self.serial += 1
        return f"{prefix}-{self.serial}"

    def label(self) -> str:
        return self.r.choice(["gpu", "mig-1g", "a", "x9", "share-0", "tensor-core"])

    def meta(self, prefix: str, namespaced: bool) -> Obj:
        meta: Obj = {"name": self.name(prefix)}
        if namespaced:
            meta["namespace"] = self.namespace
        if self.r.random() < 0.3:
            meta["labels"] = {"app.kubernetes.io/name": self.label(), "tier": self.r.choice(["a", "b-1", ""])}
        if self.r.random() < 0.2:
            meta["annotations"] = {"example.com/note": self.r.choice(["any text: with spaces", "", "{}"])}
        return meta

    # -- selectors, tolerations, config -------------------------------------------------------------------------

    def cel(self) -> str:
        return self.r.choice(
            [
                f'device.driver == "{DRIVER}"',
                f'device.attributes["{DOMAIN}"].model == "H100"',
                f'device.attributes["{DOMAIN}"].index >= 0',
                f'device.capacity["{DOMAIN}"].memory.compareTo(quantity("10Gi")) >= 0',
                f'"{DOMAIN}" in device.attributes && device.attributes["{DOMAIN}"].mig',
                f'device.attributes["{DOMAIN}"].driverVersion.isGreaterThan(semver("1.0.0"))',
                "true",
            ]
        )

    def selectors(self, most: int = 3) -> list[Obj]:
        return [{"cel": {"expression": self.cel()}} for _ in range(self.r.randint(1, most))]

    def toleration(self) -> Obj:
        op = self.r.choice(["Exists", "Equal", None])
        tol: Obj = {}
        if self.r.random() < 0.8 or op != "Exists":
            tol["key"] = self.r.choice([f"{DOMAIN}/maintenance", "unhealthy", "example.com/x"])
        if op is not None:
            tol["operator"] = op
        if op != "Exists" and self.r.random() < 0.7:
            tol["value"] = self.r.choice(["true", "a", "v1.2", ""])
        if self.r.random() < 0.6:
            tol["effect"] = self.r.choice(["NoSchedule", "NoExecute", "None"])
        if tol.get("effect") == "NoExecute" and self.r.random() < 0.5:
            tol["tolerationSeconds"] = self.r.choice([0, 60, 3600])
        return tol

    def opaque(self) -> Obj:
        params = self.r.choice(
            [
                {"apiVersion": "gpu.example.com/v1", "kind": "GpuConfig", "sharing": {"strategy": "TimeSlicing"}},
                {"kind": "Plain"},
                {"nested": {"list": [1, 2.5, "x", None, True]}},
                {},
            ]
        )
        return {"driver": self.r.choice([DRIVER, "mps.example.com", "a.b"]), "parameters": params}

    # -- claims -------------------------------------------------------------------------------------------------

    def request_fields(self, admin: bool) -> Obj:
        fields: Obj = {"deviceClassName": self.r.choice(["gpu.example.com", "mig", "shared-gpu"])}
        if self.r.random() < 0.6:
            fields["selectors"] = self.selectors()
        mode = self.r.choice([None, "ExactCount", "All"])
        if mode is not None:
            fields["allocationMode"] = mode
        if mode != "All" and self.r.random() < 0.6:
            fields["count"] = self.r.randint(1, 4)
        if self.r.random() < 0.3:
            fields["tolerations"] = [self.toleration() for _ in range(self.r.randint(1, 3))]
        if self.r.random() < 0.3:
            fields["capacity"] = {"requests": {f"{DOMAIN}/memory": self.r.choice(["10Gi", "512Mi", "1"]), "cores": "2"}}
        if admin and self.r.random() < 0.15:
            fields["adminAccess"] = True
        return fields

    def request(self, name: str) -> Obj:
        if self.r.random() < 0.65:
            return {"name": name, "exactly": self.request_fields(admin=True)}
        subs = []
        for i in range(self.r.randint(1, 3)):
            sub = self.request_fields(admin=False)
            subs.append({"name": f"{name}-alt{i}", **sub})
        return {"name": name, "firstAvailable": subs}

    def device_claim(self) -> Obj:
        names = [f"req-{i}" for i in range(self.r.randint(1, 4))]
        requests = [self.request(n) for n in names]
        refs = [n for n in names]
        for req in requests:
            refs += [f"{req['name']}/{s['name']}" for s in req.get("firstAvailable", [])]
        claim: Obj = {"requests": requests}
        if self.r.random() < 0.5:
            constraints = []
            for _ in range(self.r.randint(1, 3)):
                con: Obj = {}
                if self.r.random() < 0.7:
                    con["requests"] = self.r.sample(refs, self.r.randint(1, min(2, len(refs))))
                key = self.r.choice(["matchAttribute", "matchAttribute", "distinctAttribute"])
                con[key] = self.r.choice([f"{DOMAIN}/model", f"{DOMAIN}/pcieRoot", "resource.kubernetes.io/pcieRoot"])
                constraints.append(con)
            claim["constraints"] = constraints
        if self.r.random() < 0.5:
            config = []
            for _ in range(self.r.randint(1, 2)):
                cfg: Obj = {"opaque": self.opaque()}
                if self.r.random() < 0.6:
                    cfg["requests"] = self.r.sample(refs, 1)
                config.append(cfg)
            claim["config"] = config
        return claim

    def claim(self) -> Obj:
        return {
            "apiVersion": API,
            "kind": "ResourceClaim",
            "metadata": self.meta("claim", True),
            "spec": {"devices": self.device_claim()},
        }

    def template(self) -> Obj:
        spec: Obj = {"spec": {"devices": self.device_claim()}}
        if self.r.random() < 0.4:
            spec["metadata"] = {"labels": {"team": self.label()}, "annotations": {"a.example.com/b": "c"}}
        return {
            "apiVersion": API,
            "kind": "ResourceClaimTemplate",
            "metadata": self.meta("tmpl", True),
            "spec": spec,
        }

    def device_class(self) -> Obj:
        spec: Obj = {}
        if self.r.random() < 0.8:
            spec["selectors"] = self.selectors()
        if self.r.random() < 0.4:
            spec["config"] = [{"opaque": self.opaque()} for _ in range(self.r.randint(1, 2))]
        if self.r.random() < 0.3:
            spec["extendedResourceName"] = self.r.choice(["example.com/gpu", "gpu.example.com/h100-80gb"])
        return {"apiVersion": API, "kind": "DeviceClass", "metadata": self.meta("class", False), "spec": spec}

    # -- slices -------------------------------------------------------------------------------------------------

    def attribute(self) -> Obj:
        kind = self.r.choice(["int", "bool", "string", "version"])
        value: Any = {
            "int": self.r.choice([0, 7, -3, 1 << 40]),
            "bool": self.r.choice([True, False]),
            "string": self.r.choice(["H100", "", "pci0000:00", "x" * 64]),
            "version": self.r.choice(["1.0.0", "12.4.1-rc.1+build.5", "0.0.1"]),
        }[kind]
        return {kind: value}

    def device(self, index: int, multi: bool, counter_set: str | None, per_device: bool) -> Obj:
        dev: Obj = {"name": f"gpu-{index}"}
        if self.r.random() < 0.9:
            attrs: Obj = {"model": {"string": "H100"}, f"{DOMAIN}/index": {"int": index}}
            for i in range(self.r.randint(0, 4)):
                attrs[self.r.choice([f"attr{i}", f"{DOMAIN}/attr{i}", f"resource.kubernetes.io/a{i}"])] = (
                    self.attribute()
                )
            dev["attributes"] = attrs
        if self.r.random() < 0.7:
            cap: Obj = {"memory": {"value": self.r.choice(["80Gi", "40Gi", "1k", "100"])}}
            if multi:
                cap["memory"] = {"value": "80Gi", "requestPolicy": self.request_policy()}
                cap[f"{DOMAIN}/cores"] = {"value": "100"}
            dev["capacity"] = cap
        if multi:
            dev["allowMultipleAllocations"] = True
        if counter_set is not None:
            dev["consumesCounters"] = [{"counterSet": counter_set, "counters": {"memory": {"value": "10Gi"}}}]
        if self.r.random() < 0.2:
            dev["taints"] = [self.taint() for _ in range(self.r.randint(1, 2))]
        if self.r.random() < 0.15:
            dev["bindingConditions"] = ["example.com/ready"]
            dev["bindingFailureConditions"] = ["example.com/failed"]
            if self.r.random() < 0.5:
                dev["bindsToNode"] = True
        if per_device:
            dev.update(self.r.choice([{"nodeName": "node-a"}, {"allNodes": True}, {"nodeSelector": self.node_sel()}]))
        return dev

    def request_policy(self) -> Obj:
        return self.r.choice(
            [
                {"default": "1Gi", "validRange": {"min": "1Gi", "max": "80Gi", "step": "1Gi"}},
                {"default": "10Gi", "validRange": {"min": "1Gi"}},
                {"default": "20Gi", "validValues": ["10Gi", "20Gi", "40Gi"]},
                {"default": "1Gi"},
                {},
            ]
        )

    def taint(self) -> Obj:
        taint: Obj = {"key": self.r.choice([f"{DOMAIN}/maintenance", "unhealthy"]), "effect": "NoSchedule"}
        if self.r.random() < 0.5:
            taint["value"] = "true"
        taint["effect"] = self.r.choice(["NoSchedule", "NoExecute", "None"])
        return taint

    def node_sel(self) -> Obj:
        expr = self.r.choice(
            [
                {"key": "kubernetes.io/hostname", "operator": "In", "values": ["node-a", "node-b"]},
                {"key": "gpu", "operator": "Exists"},
                {"key": "zone", "operator": "NotIn", "values": ["z1"]},
                {"key": "gpus", "operator": "Gt", "values": ["2"]},
            ]
        )
        term: Obj = {"matchExpressions": [expr]}
        if self.r.random() < 0.3:
            term["matchFields"] = [{"key": "metadata.name", "operator": "In", "values": ["node-a"]}]
        return {"nodeSelectorTerms": [term]}

    def slice(self) -> Obj:
        spec: Obj = {
            "driver": self.r.choice([DRIVER, "a.b", "dra.example-driver.io"]),
            "pool": {
                "name": self.r.choice(["node-a", "pool/with/slashes", "p"]),
                "generation": 1,
                "resourceSliceCount": self.r.randint(1, 3),
            },
        }
        where = self.r.choice(["nodeName", "nodeSelector", "allNodes", "perDeviceNodeSelection"])
        spec[where] = {"nodeName": "node-a", "nodeSelector": self.node_sel()}.get(where, True)
        per_device = where == "perDeviceNodeSelection"
        if self.r.random() < 0.2 and not per_device:
            spec["sharedCounters"] = [
                {"name": f"gpu-{i}-counters", "counters": {"memory": {"value": "80Gi"}, "sm": {"value": "132"}}}
                for i in range(self.r.randint(1, 3))
            ]
        else:
            multi = self.r.random() < 0.25
            counters = self.r.random() < 0.2
            spec["devices"] = [
                self.device(i, multi, "gpu-0-counters" if counters else None, per_device)
                for i in range(self.r.randint(1, 6))
            ]
        return {"apiVersion": API, "kind": "ResourceSlice", "metadata": self.meta("slice", False), "spec": spec}


def makers(gen: Gen) -> dict[str, Callable[[], Obj]]:
    """A maker of fresh valid objects per kind, as the rules name kinds."""
    return {"class": gen.device_class, "claim": gen.claim, "template": gen.template, "slice": gen.slice}


def valid_objects(gen: Gen, per_kind: int) -> Iterator[Case]:
    for kind, make in makers(gen).items():
        for i in range(per_kind):
            yield Case(f"{kind}/valid/{i}", make())


def generate(seed: int = 16, namespace: str = "default", per_kind: int = 40) -> list[Case]:
    """Valid objects of every kind, then one or more mutations per rule (each of a fresh valid object)."""
    from tests.e2e.objbreak import mutations
    from tests.e2e.objlimits import at_limits

    gen = Gen(seed, namespace)
    cases = list(valid_objects(gen, per_kind))
    make = makers(gen)
    for what, kind, limit in at_limits():
        obj = make[kind]()
        limit(obj, gen.r)
        cases.append(Case(f"{kind}/at_limit/{what}", obj))
    for rule, kind, breaker in mutations():
        for variant in range(max(VARIANTS, getattr(breaker, "variants", 0))):
            obj = make[kind]()
            breaker(obj, gen.r)
            cases.append(Case(f"{kind}/{rule}/{variant}", obj, broken=rule))
    return cases
