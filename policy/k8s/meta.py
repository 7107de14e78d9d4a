"""Object metadata and the core/v1 types DRA objects embed (NodeSelector, Condition).

``ObjectMeta`` accepts everything ``kubectl get -o yaml`` prints; ``managedFields`` is kept as
opaque data.
"""

from __future__ import annotations

from typing import Any, Literal

from gpupolicy.policy.k8s.base import Bool, Int, K8sModel, Str, Time
from gpupolicy.policy.k8s.ids import Namespace

DEFAULT_NAMESPACE = Namespace("default")


class OwnerReference(K8sModel):
    api_version: Str
    kind: Str
    name: Str
    uid: Str
    controller: Bool | None = None
    block_owner_deletion: Bool | None = None


class ObjectMeta(K8sModel):
    name: Str | None = None
    generate_name: Str | None = None
    namespace: Str | None = None
    self_link: Str | None = None
    uid: Str | None = None
    resource_version: Str | None = None
    generation: Int | None = None
    creation_timestamp: Time | None = None
    deletion_timestamp: Time | None = None
    deletion_grace_period_seconds: Int | None = None
    labels: dict[Str, Str] | None = None
    annotations: dict[Str, Str] | None = None
    owner_references: list[OwnerReference] | None = None
    finalizers: list[Str] | None = None
    managed_fields: list[dict[str, Any]] | None = None

    @property
    def namespace_or_default(self) -> Namespace:
        return Namespace(self.namespace or DEFAULT_NAMESPACE)


NodeSelectorOperator = Literal["In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt"]


class NodeSelectorRequirement(K8sModel):
    key: Str
    operator: NodeSelectorOperator
    values: list[Str] | None = None


class NodeSelectorTerm(K8sModel):
    match_expressions: list[NodeSelectorRequirement] | None = None
    match_fields: list[NodeSelectorRequirement] | None = None


class NodeSelector(K8sModel):
    """A core/v1 NodeSelector: the terms are ORed, the requirements of one term ANDed."""

    node_selector_terms: list[NodeSelectorTerm]


class Condition(K8sModel):
    """A metav1.Condition."""

    type: Str
    status: Literal["True", "False", "Unknown"]
    observed_generation: Int | None = None
    last_transition_time: Time
    reason: Str
    message: Str = ""
