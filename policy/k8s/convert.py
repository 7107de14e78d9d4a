"""Conversion of resource.k8s.io/v1beta1 and v1beta2 objects to v1, before validation.

v1beta2 has the v1 shape. v1beta1 differs in two places:

- a claim request carries the fields of an exact request inline (``deviceClassName``, ``selectors``,
  ``allocationMode``, ``count``, ``adminAccess``, ``tolerations``, ``capacity``) instead of under
  ``exactly``; as in the API server, they move to ``exactly`` when any of them is set;
- a slice device wraps everything but its name in ``basic``.

Errors found later point into the file as written: :class:`ConvertedDoc` maps v1 key paths back to
the source's own paths.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from gpupolicy.policy.errors import Diagnostic, KeyPath, Location
from gpupolicy.policy.k8s.common import API_GROUP, API_VERSION
from gpupolicy.policy.yamlsrc import SourceDoc

RESOURCE_KINDS = ("DeviceClass", "ResourceClaim", "ResourceClaimTemplate", "ResourceSlice")
RESOURCE_VERSIONS = ("v1", "v1beta2", "v1beta1")
EXACT_FIELDS = ("deviceClassName", "selectors", "allocationMode", "count", "adminAccess", "tolerations", "capacity")

PathMap = Callable[[KeyPath], KeyPath]


def _identity(path: KeyPath) -> KeyPath:
    return path


@dataclass(frozen=True)
class ConvertedDoc(SourceDoc):
    """A SourceDoc whose ``data`` is in v1 shape while locations still point at the original text."""

    source_version: str = API_VERSION
    to_source: PathMap = field(default=_identity, repr=False, compare=False)

    def locate(self, path: Sequence[str | int] = ()) -> Location:
        return super().locate(self.to_source(tuple(path)))

    def locate_key(self, path: Sequence[str | int]) -> Location:
        return super().locate_key(self.to_source(tuple(path)))


@dataclass
class Conversion:
    doc: ConvertedDoc
    diagnostics: list[Diagnostic]


def is_resource_api(api_version: str) -> bool:
    group, _, version = api_version.partition("/")
    return group == API_GROUP and version in RESOURCE_VERSIONS


def convert_doc(doc: SourceDoc) -> Conversion:
    """Return ``doc`` in v1 shape (unchanged when it is not a resource.k8s.io beta object)."""
    version = doc.api_version
    problems: list[Diagnostic] = []
    data: Any = doc.data
    to_source: PathMap = _identity
    if is_resource_api(version) and version != API_VERSION and isinstance(data, dict):
        data = copy.deepcopy(data)
        data["apiVersion"] = API_VERSION
        if version.endswith("/v1beta1"):
            to_source = _convert_v1beta1(doc, data, problems)
    converted = ConvertedDoc(
        data=data,
        filename=doc.filename,
        index=doc.index,
        prefix=doc.prefix,
        positions=doc.positions,
        key_positions=doc.key_positions,
        source_version=version,
        to_source=to_source,
    )
    return Conversion(converted, problems)


def _convert_v1beta1(doc: SourceDoc, data: dict[str, Any], problems: list[Diagnostic]) -> PathMap:
    kind = data.get("kind")
    if kind == "ResourceClaim":
        _requests_to_exactly(doc, _dig(data, "spec", "devices"), ("spec", "devices"), problems)
        return _exactly_map(("spec", "devices", "requests"))
    if kind == "ResourceClaimTemplate":
        _requests_to_exactly(doc, _dig(data, "spec", "spec", "devices"), ("spec", "spec", "devices"), problems)
        return _exactly_map(("spec", "spec", "devices", "requests"))
    if kind == "ResourceSlice":
        _unwrap_basic(doc, _dig(data, "spec"), problems)
        return _basic_map
    return _identity


def _dig(data: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def _requests_to_exactly(doc: SourceDoc, devices: Any, base: KeyPath, problems: list[Diagnostic]) -> None:
    requests = devices.get("requests") if isinstance(devices, dict) else None
    if not isinstance(requests, list):
        return
    for i, request in enumerate(requests):
        if not isinstance(request, dict):
            continue
        if "exactly" in request:
            loc = doc.locate_key((*base, "requests", i, "exactly"))
            problems.append(Diagnostic("unknown_field", 'field "exactly" is not allowed in v1beta1', loc))
            del request["exactly"]
        exact = {k: request.pop(k) for k in EXACT_FIELDS if k in request}
        if exact:
            request["exactly"] = exact


def _exactly_map(requests: KeyPath) -> PathMap:
    n = len(requests)

    def to_source(path: KeyPath) -> KeyPath:
        if len(path) > n + 1 and path[:n] == requests and path[n + 1] == "exactly":
            return path[: n + 1] + path[n + 2 :]
        return path

    return to_source


def _unwrap_basic(doc: SourceDoc, spec: Any, problems: list[Diagnostic]) -> None:
    devices = spec.get("devices") if isinstance(spec, dict) else None
    if not isinstance(devices, list):
        return
    for i, device in enumerate(devices):
        if not isinstance(device, dict):
            continue
        for key in [k for k in device if k not in ("name", "basic")]:
            loc = doc.locate_key(("spec", "devices", i, key))
            problems.append(Diagnostic("unknown_field", f'field "{key}" is not allowed in v1beta1 (use "basic")', loc))
            del device[key]
        basic = device.pop("basic", None)
        if isinstance(basic, dict):
            for key, value in basic.items():
                if key == "name":
                    loc = doc.locate_key(("spec", "devices", i, "basic", "name"))
                    problems.append(Diagnostic("unknown_field", 'field "name" is not allowed', loc))
                    continue
                device[key] = value
        elif basic is not None:
            loc = doc.locate(("spec", "devices", i, "basic"))
            problems.append(Diagnostic("invalid_type", "basic must be an object", loc))


def _basic_map(path: KeyPath) -> KeyPath:
    if len(path) > 3 and path[:2] == ("spec", "devices") and path[3] != "name":
        return (*path[:3], "basic", *path[3:])
    return path
