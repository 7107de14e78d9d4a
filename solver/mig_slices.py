"""MIG compute slices: how many a device holds and how many its GPU has.

A MIG device's compute slices come from its ``profile`` attribute (``3g.40gb`` -> 3, ``1g.10gb+me`` -> 1).
A GPU's total is its model's (7 on A100/H100/H200/B200, 4 on A30 and RTX PRO 6000), found from a
``productName`` or ``model`` attribute through the GPU catalog; without one, the largest profile among the
GPU's devices, and for a static MIG GPU at least the slices of its instances together (they coexist).
A device of a MIG GPU without a profile (the whole GPU of a dynamic-MIG counter set) holds them all.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from gpupolicy.policy.catalog import find_model, model_for_product


def profile_of(attributes: Mapping[str, object]) -> str:
    return next((str(v) for k, v in attributes.items() if k.endswith("/profile")), "")


def compute_slices(attributes: Mapping[str, object]) -> int:
    """The ``<N>`` of a ``<N>g.<memory>`` profile; 0 without a profile."""
    head = profile_of(attributes).split("g.", 1)[0]
    return int(head) if head.isdigit() else 0


def _catalog_total(attributes: Mapping[str, object]) -> int:
    for suffix, lookup in (("/productName", model_for_product), ("/model", find_model)):
        name = next((str(v) for k, v in attributes.items() if k.endswith(suffix)), "")
        model = lookup(name) if name else None
        if model is not None and model.mig_compute_slices:
            return model.mig_compute_slices
    return 0


def gpu_compute_total(devices: Sequence[Mapping[str, object]], *, static: bool = False) -> int:
    """Compute slices of the GPU these devices (the attributes of each) are carved from; 0 if none is MIG."""
    slices = [compute_slices(a) for a in devices]
    if not any(slices):
        return 0
    total = max(slices)
    if static:
        total = max(total, sum(slices))
    for attributes in devices:
        if known := _catalog_total(attributes):
            return max(known, total)
    return total


def device_compute(attributes: Mapping[str, object], gpu_total: int) -> int:
    """Compute slices a device of a MIG GPU holds: its profile's, else (the whole GPU) all of them."""
    return compute_slices(attributes) or gpu_total
