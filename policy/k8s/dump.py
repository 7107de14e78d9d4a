"""Writing objects back as Kubernetes YAML, in the shape ``kubectl get -o yaml`` prints.

``apiVersion`` and ``kind`` are always present, field names are camelCase, unset fields are
left out (never ``null``), quantities are canonical (``1Gi``, ``500m``) and keys are sorted
as kubectl sorts them. Pods and workloads are written with only the fields gpupolicy reads.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel

from gpupolicy.policy.yamlsrc import dump_yaml


def to_wire(obj: BaseModel) -> dict[str, Any]:
    """The object as the API server would return it (``apiVersion``/``kind`` first)."""
    return obj.model_dump(by_alias=True, exclude_none=True, mode="json")


def dump_objects(objects: Iterable[BaseModel]) -> str:
    """Multi-document YAML, one document per object."""
    return dump_yaml([to_wire(o) for o in objects])


def as_list(objects: Iterable[BaseModel]) -> dict[str, Any]:
    """A ``kind: List`` object, as ``kubectl get <kind> -o yaml`` prints several objects."""
    return {
        "apiVersion": "v1",
        "items": [to_wire(o) for o in objects],
        "kind": "List",
        "metadata": {"resourceVersion": ""},
    }


def dump_list(objects: Iterable[BaseModel]) -> str:
    return dump_yaml([as_list(objects)])
