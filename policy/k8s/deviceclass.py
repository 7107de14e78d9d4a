"""DeviceClass (resource.k8s.io/v1, cluster scoped)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from gpupolicy.policy.k8s.base import K8sModel, Str
from gpupolicy.policy.k8s.common import DeviceClassConfiguration, DeviceSelector
from gpupolicy.policy.k8s.meta import ObjectMeta


class DeviceClassSpec(K8sModel):
    selectors: list[DeviceSelector] | None = None
    config: list[DeviceClassConfiguration] | None = None
    extended_resource_name: Str | None = None


class DeviceClass(K8sModel):
    api_version: Literal["resource.k8s.io/v1"] = "resource.k8s.io/v1"
    kind: Literal["DeviceClass"] = "DeviceClass"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: DeviceClassSpec = Field(default_factory=DeviceClassSpec)

    @property
    def name(self) -> str:
        return self.metadata.name or ""

    @property
    def cel_expressions(self) -> list[str]:
        return [s.cel.expression for s in self.spec.selectors or () if s.cel is not None]
