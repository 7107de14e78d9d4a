"""Per-model facts the MIG CSV does not hold; see :mod:`gpupolicy.policy.catalog` for their sources."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

# GI profile IDs per MIG grid, by profile name pattern (compute slices, memory slots, suffix).
_GI_IDS_8SLOT = {(1, 1, ""): 19, (1, 1, "+me"): 20, (1, 2, ""): 15, (2, 2, ""): 14, (3, 4, ""): 9, (4, 4, ""): 5}
_GI_IDS_8SLOT[(7, 8, "")] = 0
_GI_IDS_A30 = {(1, 1, ""): 14, (1, 1, "+me"): 21, (2, 2, ""): 5, (2, 2, "+me"): 6, (4, 4, ""): 0}
_GI_IDS_RTX = {
    (1, 3, ""): 14,
    (1, 3, "+me"): 21,
    (1, 3, "+gfx"): 47,
    (1, 3, "+me.all"): 65,
    (1, 3, "-me"): 67,
    (2, 6, ""): 5,
    (2, 6, "+gfx"): 35,
    (2, 6, "+me.all"): 64,
    (2, 6, "-me"): 66,
    (4, 12, ""): 0,
    (4, 12, "+gfx"): 32,
}

# (multiprocessors, copy engines) per (compute slices, memory slots).
_SM_A100 = {(1, 1): (14, 1), (1, 2): (14, 1), (2, 2): (28, 2), (3, 4): (42, 3), (4, 4): (56, 4), (7, 8): (98, 7)}
_SM_H100 = {(1, 1): (16, 1), (1, 2): (26, 1), (2, 2): (32, 2), (3, 4): (60, 3), (4, 4): (64, 4), (7, 8): (132, 8)}
_SM_B200 = {(1, 1): (21, 2), (1, 2): (21, 2), (2, 2): (42, 3), (3, 4): (63, 6), (4, 4): (84, 8), (7, 8): (148, 16)}
_SM_A30 = {(1, 1): (14, 1), (2, 2): (28, 2), (4, 4): (56, 4)}
_SM_RTX = {(1, 3): (46, 1), (2, 6): (94, 2), (4, 12): (188, 4)}


@dataclass(frozen=True)
class MigSource:
    csv_model: str
    gi_ids: Mapping[tuple[int, int, str], int]
    sms: Mapping[tuple[int, int], tuple[int, int]]
    sm_assumed: bool
    memory_slots: int
    compute_slices: int
    media_like_h100: bool = False


_MIG_A100_40 = MigSource("A100-40GB", _GI_IDS_8SLOT, _SM_A100, False, 8, 7)
_MIG_A100_80 = MigSource("A100-80GB", _GI_IDS_8SLOT, _SM_A100, False, 8, 7)
_MIG_H100 = MigSource("H100-80GB", _GI_IDS_8SLOT, _SM_H100, False, 8, 7)
_MIG_H100_PCIE = MigSource("H100-80GB", _GI_IDS_8SLOT, _SM_A100, True, 8, 7)


@dataclass(frozen=True)
class ModelSpec:
    name: str
    product_names: tuple[str, ...]
    architecture: str
    compute_capability: str
    brand: str
    memory_mib: int
    multiprocessors: int
    aliases: tuple[str, ...] = ()
    memory_assumed: bool = False
    mig: MigSource | None = None


MODELS: tuple[ModelSpec, ...] = (
    ModelSpec(
        "A100-40GB",
        ("NVIDIA A100-SXM4-40GB", "NVIDIA A100-PCIE-40GB"),
        "Ampere",
        "8.0",
        "Nvidia",
        40960,
        108,
        ("A100", "A100-SXM4-40GB", "A100-PCIE-40GB"),
        mig=_MIG_A100_40,
    ),
    ModelSpec(
        "A100-80GB",
        ("NVIDIA A100-SXM4-80GB", "NVIDIA A100 80GB PCIe"),
        "Ampere",
        "8.0",
        "Nvidia",
        81920,
        108,
        ("A100-SXM4-80GB", "A100-PCIE-80GB"),
        mig=_MIG_A100_80,
    ),
    ModelSpec(
        "A30",
        ("NVIDIA A30",),
        "Ampere",
        "8.0",
        "Nvidia",
        24576,
        56,
        ("A30-24GB",),
        mig=MigSource("A30-24GB", _GI_IDS_A30, _SM_A30, False, 4, 4),
    ),
    ModelSpec(
        "H100-80GB",
        ("NVIDIA H100 80GB HBM3",),
        "Hopper",
        "9.0",
        "Nvidia",
        81559,
        132,
        ("H100", "H100-SXM-80GB", "H100-SXM5-80GB"),
        mig=_MIG_H100,
    ),
    ModelSpec(
        "H100-PCIe-80GB",
        ("NVIDIA H100 PCIe",),
        "Hopper",
        "9.0",
        "Nvidia",
        81559,
        114,
        ("H100-PCIE", "H100-PCIe"),
        mig=_MIG_H100_PCIE,
    ),
    ModelSpec(
        "H100-94GB-NVL",
        ("NVIDIA H100 NVL",),
        "Hopper",
        "9.0",
        "Nvidia",
        95830,
        132,
        ("H100-NVL", "H100-94GB"),
        mig=MigSource("H100-94GB-NVL", _GI_IDS_8SLOT, _SM_H100, True, 8, 7),
    ),
    ModelSpec(
        "H200-141GB",
        ("NVIDIA H200", "NVIDIA H200 NVL"),
        "Hopper",
        "9.0",
        "Nvidia",
        143771,
        132,
        ("H200",),
        mig=MigSource("H200-141GB", _GI_IDS_8SLOT, _SM_H100, True, 8, 7),
    ),
    ModelSpec(
        "B200-180GB",
        ("NVIDIA B200",),
        "Blackwell",
        "10.0",
        "Nvidia",
        183359,
        148,
        ("B200",),
        memory_assumed=True,
        mig=MigSource("B200-180GB", _GI_IDS_8SLOT, _SM_B200, True, 8, 7, media_like_h100=True),
    ),
    ModelSpec(
        "GB200-186GB",
        ("NVIDIA GB200",),
        "Blackwell",
        "10.0",
        "Nvidia",
        189471,
        148,
        ("GB200",),
        memory_assumed=True,
        mig=MigSource("GB200-186GB", _GI_IDS_8SLOT, _SM_B200, True, 8, 7),
    ),
    ModelSpec(
        "RTX-PRO-6000-Blackwell-96GB",
        ("NVIDIA RTX PRO 6000 Blackwell Server Edition", "NVIDIA RTX PRO 6000 Blackwell Workstation Edition"),
        "Blackwell",
        "12.0",
        "NvidiaRTX",
        97887,
        188,
        ("RTX-PRO-6000", "RTX-PRO-6000-Blackwell"),
        mig=MigSource("RTX-PRO-6000-Blackwell-96GB", _GI_IDS_RTX, _SM_RTX, False, 12, 4),
    ),
    ModelSpec("L4", ("NVIDIA L4",), "Ada Lovelace", "8.9", "Nvidia", 23034, 58),
    ModelSpec("L40S", ("NVIDIA L40S",), "Ada Lovelace", "8.9", "Nvidia", 46068, 142),
    ModelSpec("A10", ("NVIDIA A10",), "Ampere", "8.6", "Nvidia", 22731, 72, ("A10-24GB",)),
    ModelSpec("T4", ("Tesla T4",), "Turing", "7.5", "Tesla", 15109, 40, ("T4-16GB",)),
    ModelSpec(
        "V100-16GB",
        ("Tesla V100-SXM2-16GB", "Tesla V100-PCIE-16GB"),
        "Volta",
        "7.0",
        "Tesla",
        16160,
        80,
        ("V100M16", "V100", "V100-SXM2-16GB"),
    ),
    ModelSpec(
        "V100-32GB",
        ("Tesla V100-SXM2-32GB", "Tesla V100S-PCIE-32GB"),
        "Volta",
        "7.0",
        "Tesla",
        32510,
        80,
        ("V100M32", "V100-SXM2-32GB"),
    ),
    ModelSpec("P100", ("Tesla P100-PCIE-16GB",), "Pascal", "6.0", "Tesla", 16280, 56, ("P100-16GB",)),
    ModelSpec("G2", ("Unknown GPU G2",), "Unknown", "0.0", "Unknown", 16384, 0, (), memory_assumed=True),
    ModelSpec("G3", ("Unknown GPU G3",), "Unknown", "0.0", "Unknown", 16384, 0, (), memory_assumed=True),
)
