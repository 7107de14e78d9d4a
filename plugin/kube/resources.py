"""The API resources gpupolicy reads and writes, by plural name, and the paths to them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

Obj = dict[str, Any]
"""An API object as JSON decodes it (the shape ``kubectl get -o json`` shows)."""


@dataclass(frozen=True)
class Resource:
    api_version: str
    kind: str
    plural: str
    namespaced: bool

    @property
    def prefix(self) -> str:
        return "/api/v1" if self.api_version == "v1" else f"/apis/{self.api_version}"


RESOURCES: Mapping[str, Resource] = {
    r.plural: r
    for r in (
        Resource("v1", "Pod", "pods", True),
        Resource("v1", "Node", "nodes", False),
        Resource("v1", "Namespace", "namespaces", False),
        Resource("v1", "ServiceAccount", "serviceaccounts", True),
        Resource("v1", "Event", "events", True),
        Resource("resource.k8s.io/v1", "ResourceClaim", "resourceclaims", True),
        Resource("resource.k8s.io/v1", "ResourceClaimTemplate", "resourceclaimtemplates", True),
        Resource("resource.k8s.io/v1", "ResourceSlice", "resourceslices", False),
        Resource("resource.k8s.io/v1", "DeviceClass", "deviceclasses", False),
        Resource("coordination.k8s.io/v1", "Lease", "leases", True),
        Resource("policy/v1", "PodDisruptionBudget", "poddisruptionbudgets", True),
    )
}


def path(
    kind: str,
    namespace: str | None = None,
    name: str | None = None,
    sub: str | None = None,
    query: Mapping[str, str] | None = None,
) -> str:
    """The URL path of a collection (no ``name``), an object or its subresource; names are escaped."""
    res = RESOURCES[kind]
    out = res.prefix
    if res.namespaced and namespace:
        out += f"/namespaces/{quote(namespace, safe='')}"
    out += f"/{res.plural}"
    if name:
        out += f"/{quote(name, safe='')}"
    if sub:
        out += f"/{sub}"
    if query:
        out += "?" + urlencode(query)
    return out
