"""Reading what ``gpupolicy solve`` is given (texts, not files) into the compiler's inputs.

- inventory: ResourceSlices (YAML or ``kind: List``), cluster descriptions (expanded through the
  policy when there is one), Nodes (name and labels), DeviceClasses, and ResourceClaims that already
  have ``status.allocation`` (fixed, existing allocations);
- claims: ResourceClaims, ResourceClaimTemplates, Pods and workloads (Deployment, Job, …) that
  reference them. A Pod's claims form one gang (all or nothing); a claim generated from a template for
  a pod is named ``<pod>-<podClaimName>``. A template no pod references stands for
  ``gpupolicy.dev/replicas`` (annotation, default 1) claims named ``<template>-<i>``;
- DeviceClasses from the policy and from any input file (files override the policy by name);
- who holds the allocated claims: Pods that are bound (``spec.nodeName``, or ``status.phase`` Running,
  Succeeded, Failed) are not pending; they become ``SolveInput.pods`` (their claims are neither generated nor
  placed), and PodDisruptionBudgets become ``SolveInput.budgets``. Both only matter to a solve that may
  preempt or defragment (:mod:`gpupolicy.solver.evictions`).

Pending claims keep their arrival order: files in the order given, objects in file order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from gpupolicy.policy.cluster import KIND as CLUSTER_KIND
from gpupolicy.policy.cluster import load_cluster_doc, render
from gpupolicy.policy.errors import Diagnostic, DiagnosticError, Location
from gpupolicy.policy.k8s.claim import ResourceClaim, ResourceClaimTemplate
from gpupolicy.policy.k8s.load import Loaded, LoadResult, load_objects
from gpupolicy.policy.k8s.meta import ObjectMeta
from gpupolicy.policy.k8s.pod import Pod, PodSpec
from gpupolicy.policy.k8s.slice import ResourceSlice
from gpupolicy.policy.policyfile.compile import load_policy
from gpupolicy.policy.policyfile.compiled import CompiledPolicy
from gpupolicy.policy.yamlsrc import SourceDoc, parse_yaml
from gpupolicy.solver.compile import ClassInfo, Compiled, Locate, PendingClaim, compile_problem
from gpupolicy.solver.compile_devices import NodeInfo
from gpupolicy.solver.evictions import BudgetInfo, PodInfo, build_evictions
from gpupolicy.solver.holders import budget_info, is_bound, pod_info
from gpupolicy.solver.problem import ClaimKey, Disruption, Eviction

REPLICAS_ANNOTATION = "gpupolicy.dev/replicas"
Text = tuple[str, str]  # (content, filename)


@dataclass
class SolveInput:
    slices: list[ResourceSlice] = field(default_factory=list)
    nodes: list[NodeInfo] = field(default_factory=list)
    classes: dict[str, ClassInfo] = field(default_factory=dict)
    pending: list[PendingClaim] = field(default_factory=list)
    allocated: list[ResourceClaim] = field(default_factory=list)
    policy: CompiledPolicy | None = None
    pods: list[PodInfo] = field(default_factory=list)  # bound pods: who holds the allocated claims
    budgets: list[BudgetInfo] = field(default_factory=list)  # PodDisruptionBudgets

    def compile(self, disruption: Disruption | None = None) -> Compiled:
        """The solver's problem for everything read: pending claims placed around the existing allocations (which
        ``disruption`` may let the solve preempt or move)."""
        evictions: dict[ClaimKey, Eviction] = {}
        budgets: dict[str, int] = {}
        if disruption is not None and disruption.any:
            evictions, budgets = build_evictions(self.allocated, self.pods, self.budgets)
        return compile_problem(
            self.slices,
            self.classes,
            self.pending,
            allocated=self.allocated,
            nodes=self.nodes,
            policy=self.policy,
            evictions=evictions,
            budgets=budgets,
            disruption=disruption,
        )


def read_inputs(inventory: Sequence[Text], claims: Sequence[Text], policy: Text | None = None) -> SolveInput:
    out = SolveInput()
    problems: list[Diagnostic] = []
    if policy is not None:
        out.policy = load_policy(*policy)
        for cls in out.policy.device_classes:
            out.classes[cls.name] = ClassInfo(cls)
    ordered: list[tuple[int, int, Loaded[Any]]] = []
    for fi, (text, filename) in enumerate([*inventory, *claims]):
        docs = _parse(text, filename, problems)
        kube: list[SourceDoc] = []
        for doc in docs:
            if doc.kind == CLUSTER_KIND:
                _cluster(out, doc, problems)
            elif doc.kind == "Node" and doc.api_version == "v1":
                _node(out, doc)
            else:
                kube.append(doc)
        loaded = load_objects(kube)
        problems += loaded.diagnostics
        ordered += [(fi, item.doc.index, item) for item in loaded.objects()]
        _collect(out, loaded)
    if problems:
        raise DiagnosticError(problems)
    _pending(out, [item for _, _, item in sorted(ordered, key=lambda t: (t[0], t[1]))])
    _no_duplicates(out)
    return out


def _no_duplicates(out: SolveInput) -> None:
    """Two pending claims (given or generated) with one namespace/name cannot both exist."""
    seen: dict[tuple[str, str], PendingClaim] = {}
    problems = []
    allocated = {(c.metadata.namespace_or_default, c.metadata.name or "") for c in out.allocated}
    for item in out.pending:
        meta = item.claim.metadata
        key = (meta.namespace_or_default, meta.name or "")
        if key in seen or key in allocated:
            message = f"ResourceClaim {key[0]}/{key[1]} is given (or generated from a template) more than once"
            problems.append(Diagnostic("duplicate_claim", message, item.locate(("metadata", "name"))))
        seen[key] = item
    if problems:
        raise DiagnosticError(problems)


def _parse(text: str, filename: str, problems: list[Diagnostic]) -> list[SourceDoc]:
    try:
        return parse_yaml(text, filename)
    except DiagnosticError as exc:
        problems += exc.diagnostics
        return []


def _cluster(out: SolveInput, doc: SourceDoc, problems: list[Diagnostic]) -> None:
    try:
        cluster = load_cluster_doc(doc)
        if out.policy is not None:
            classes, slices = render(out.policy, cluster)
            for cls in classes:
                out.classes.setdefault(cls.name, ClassInfo(cls))
        else:
            slices = cluster.slices()
    except DiagnosticError as exc:
        problems += exc.diagnostics
        return
    out.slices += slices
    out.nodes += [NodeInfo(n.name, dict(n.labels)) for n in cluster.nodes]


def _node(out: SolveInput, doc: SourceDoc) -> None:
    meta = doc.data.get("metadata") or {}
    name = str(meta.get("name", ""))
    labels = {str(k): str(v) for k, v in (meta.get("labels") or {}).items()}
    out.nodes.append(NodeInfo(name, labels))


def _collect(out: SolveInput, loaded: LoadResult) -> None:
    out.slices += [s.obj for s in loaded.slices]
    for c in loaded.device_classes:
        out.classes[c.obj.name] = ClassInfo(c.obj, c.doc.locate)
    out.allocated += [c.obj for c in loaded.claims if c.obj.allocation is not None]
    out.pods += [pod_info(p.obj) for p in loaded.pods if is_bound(p.obj)]
    out.budgets += [budget_info(b.obj) for b in loaded.budgets]


def _pending(out: SolveInput, items: list[Loaded[Any]]) -> None:
    templates: dict[tuple[str, str], Loaded[ResourceClaimTemplate]] = {}
    claims: dict[tuple[str, str], Loaded[ResourceClaim]] = {}
    for item in items:
        obj = item.obj
        key = (obj.metadata.namespace_or_default, obj.metadata.name or "")
        if isinstance(obj, ResourceClaimTemplate):
            templates[key] = item
        elif isinstance(obj, ResourceClaim) and obj.allocation is None:
            claims[key] = item
    used_templates: set[tuple[str, str]] = set()
    gangs: dict[tuple[str, str], str] = {}
    generated: list[tuple[Loaded[Any], list[PendingClaim]]] = []
    for item in items:
        obj = item.obj
        if isinstance(obj, Pod) and is_bound(obj):  # holds its claims: none generated, its templates not replicas
            namespace = obj.metadata.namespace_or_default
            refs = obj.spec.resource_claims or ()
            used_templates.update(
                (namespace, r.resource_claim_template_name) for r in refs if r.resource_claim_template_name
            )
            continue
        if isinstance(obj, Pod):
            pods = [(obj.metadata.name or "", obj.spec)]
        elif hasattr(obj, "pod_count"):
            base = obj.metadata.name or ""
            pods = [(f"{base}-{i}", obj.spec.template.spec) for i in range(obj.pod_count)]
        else:
            continue
        namespace = obj.metadata.namespace_or_default
        made = []
        for pod_name, spec in pods:
            made += _pod_claims(namespace, pod_name, spec, templates, claims, used_templates, gangs)
        generated.append((item, made))
    made_by = {id(item): made for item, made in generated}
    for item in items:
        obj = item.obj
        key = (obj.metadata.namespace_or_default, obj.metadata.name or "")
        if isinstance(obj, ResourceClaim) and key in claims:
            gang = gangs.get(key)
            out.pending.append(PendingClaim(obj, item.doc.locate, gang))
        elif isinstance(obj, ResourceClaimTemplate) and key not in used_templates:
            out.pending += _replicas(item)
        out.pending += made_by.get(id(item), [])


def _pod_claims(
    namespace: str,
    pod: str,
    spec: PodSpec,
    templates: dict[tuple[str, str], Loaded[ResourceClaimTemplate]],
    claims: dict[tuple[str, str], Loaded[ResourceClaim]],
    used: set[tuple[str, str]],
    gangs: dict[tuple[str, str], str],
) -> list[PendingClaim]:
    gang = f"{namespace}/{pod}"
    out = []
    for ref in spec.resource_claims or ():
        if ref.resource_claim_name:
            gangs.setdefault((namespace, ref.resource_claim_name), gang)
            continue
        template = templates.get((namespace, ref.resource_claim_template_name or ""))
        if template is None:
            continue
        used.add((namespace, ref.resource_claim_template_name or ""))
        out.append(_from_template(template, f"{pod}-{ref.name}", gang))
    return out


def _from_template(template: Loaded[ResourceClaimTemplate], name: str, gang: str | None) -> PendingClaim:
    tmpl = template.obj
    meta = tmpl.spec.metadata or ObjectMeta()
    claim = ResourceClaim(
        metadata=ObjectMeta(
            name=name,
            namespace=tmpl.metadata.namespace_or_default,
            labels=meta.labels,
            annotations=meta.annotations,
        ),
        spec=tmpl.spec.spec,
    )
    return PendingClaim(claim, _template_locate(template.doc.locate), gang)


def _template_locate(locate: Locate) -> Locate:
    def inner(path: Sequence[str | int]) -> Location:
        return locate(("spec", *path) if path else ())

    return inner


def _replicas(template: Loaded[ResourceClaimTemplate]) -> list[PendingClaim]:
    annotations = template.obj.metadata.annotations or {}
    text = annotations.get(REPLICAS_ANNOTATION, "1")
    count = int(text) if text.isdigit() else 1
    name = template.obj.metadata.name or ""
    return [_from_template(template, f"{name}-{i}", None) for i in range(count)]
