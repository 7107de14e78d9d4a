"""Writing objects back in kubectl's shape, and reading them again."""

from __future__ import annotations

import yaml

from gpupolicy.policy.k8s.dump import as_list, dump_list, dump_objects, to_wire
from gpupolicy.policy.k8s.load import load_text

from .conftest import read_data


def test_kubectl_list_round_trips_exactly() -> None:
    text = read_data("kubectl_resourceslices.yaml")
    result = load_text(text, "slices.yaml")
    assert result.ok, result.diagnostics
    assert [s.obj.name for s in result.slices] == ["node-1-gpu.example.com-x7k2p", "cluster-nics"]
    # Same data as kubectl printed, managedFields and timestamps included.
    assert yaml.safe_load(dump_list(s.obj for s in result.slices)) == yaml.safe_load(text)


def test_every_fixture_object_round_trips() -> None:
    for name in ("valid_v1.yaml", "valid_v1beta1.yaml"):
        first = load_text(read_data(name), name)
        again = load_text(dump_objects(o.obj for o in first.objects()), "again.yaml")
        assert again.ok, again.diagnostics
        assert [o.obj for o in again.objects()] == [o.obj for o in first.objects()]


def test_dump_is_kubectl_shaped() -> None:
    claim = load_text(read_data("valid_v1beta1.yaml"), "f.yaml").claims[0].obj
    wire = to_wire(claim)
    assert list(wire)[:2] == ["apiVersion", "kind"] and wire["apiVersion"] == "resource.k8s.io/v1"
    request = wire["spec"]["devices"]["requests"][0]
    assert request["exactly"]["deviceClassName"] == "gpu.example.com"  # v1 shape, camelCase
    text = dump_objects([claim])
    assert "null" not in text and "device_class_name" not in text


def test_quantities_are_written_canonically() -> None:
    text = read_data("kubectl_resourceslices.yaml").replace("value: 80Gi", "value: 81920Mi")
    slices = [s.obj for s in load_text(text, "f.yaml").slices]
    written = yaml.safe_load(dump_list(slices))
    device = written["items"][0]["spec"]["devices"][0]
    assert device["capacity"]["memory"]["value"] == "80Gi"


def test_unquoted_timestamps_are_kept_as_rfc3339() -> None:
    text = read_data("kubectl_resourceslices.yaml").replace('"2026-11-20T10:11:12Z"', "2026-11-20T10:11:12Z")
    slices = [s.obj for s in load_text(text, "f.yaml").slices]
    assert slices[0].metadata.creation_timestamp == "2026-11-20T10:11:12Z"
    assert as_list(slices)["items"][1]["metadata"]["creationTimestamp"] == "2026-11-20T10:11:12Z"
