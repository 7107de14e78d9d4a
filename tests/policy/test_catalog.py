"""The GPU catalog against the shipped MIG table, and the MIG placement rules."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from gpupolicy.policy.catalog import (
    MigPlacement,
    Placement,
    all_models,
    find_model,
    fits,
    get_model,
    layout_problems,
    model_for_product,
    placement_problem,
    valid_placements,
)

PACKAGED_CSV = Path(__file__).resolve().parents[2] / "policy" / "data" / "mig_profiles.csv"

CSV_TO_MODEL = {
    "A100-40GB": "A100-40GB",
    "A100-80GB": "A100-80GB",
    "A30-24GB": "A30",
    "H100-80GB": "H100-80GB",
    "H100-94GB-NVL": "H100-94GB-NVL",
    "H200-141GB": "H200-141GB",
    "B200-180GB": "B200-180GB",
    "GB200-186GB": "GB200-186GB",
    "RTX-PRO-6000-Blackwell-96GB": "RTX-PRO-6000-Blackwell-96GB",
}


def _rows() -> list[dict[str, str]]:
    """The table shipped in the package (pinned in data/SHA256SUMS and compared with ../shared/data/mig_profiles.csv
    where that is beside the clone, by tests/test_data.py)."""
    with PACKAGED_CSV.open(encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.parametrize("row", _rows(), ids=lambda r: f"{r['gpu_model']}/{r['profile']}")
def test_every_csv_row_is_in_the_catalog(row: dict[str, str]) -> None:
    model = get_model(CSV_TO_MODEL[row["gpu_model"]])
    profile = model.profile(row["profile"])
    want = sorted(Placement(int(s), int(n)) for s, n in (p.split(":") for p in row["placements"].split(";")))
    assert list(valid_placements(profile)) == want
    assert profile.compute_slices == int(row["compute_slices"])
    assert profile.memory_slots == int(row["memory_slices"])
    assert profile.max_instances == int(row["max_instances"])
    assert profile.assumed == ("ASSUMED" in row["source"])
    if row["memory_mib"]:
        assert profile.memory_mib == int(row["memory_mib"])
        assert not profile.memory_assumed
    else:
        assert profile.memory_assumed
        assert 0 < profile.memory_mib <= model.memory_mib
    for placement in profile.placements:
        assert placement.size == profile.memory_slots
        assert placement.start + placement.size <= model.mig_memory_slots


def test_profile_count_matches_csv() -> None:
    per_model: dict[str, int] = {}
    for row in _rows():
        per_model[row["gpu_model"]] = per_model.get(row["gpu_model"], 0) + 1
    for csv_model, count in per_model.items():
        assert len(get_model(CSV_TO_MODEL[csv_model]).mig_profiles) == count


@pytest.mark.parametrize(
    ("model", "profile", "gi_id"),
    [
        ("A100-40GB", "1g.5gb", 19),
        ("A100-40GB", "2g.10gb", 14),
        ("A100-80GB", "1g.20gb", 15),
        ("H100-80GB", "1g.10gb+me", 20),
        ("H100-80GB", "3g.40gb", 9),
        ("H100-80GB", "4g.40gb", 5),
        ("H100-80GB", "7g.80gb", 0),
        ("A30", "2g.12gb+me", 6),
        ("RTX-PRO-6000", "1g.24gb-me", 67),
    ],
)
def test_gi_profile_ids(model: str, profile: str, gi_id: int) -> None:
    assert get_model(model).profile(profile).gi_profile_id == gi_id


def test_gi_profile_ids_unique_per_model() -> None:
    for model in all_models():
        ids = [p.gi_profile_id for p in model.mig_profiles]
        assert len(ids) == len(set(ids)), model.name


def test_device_name_part_has_no_dots_or_plus() -> None:
    profile = get_model("H100-80GB").profile("1g.10gb+me")
    assert profile.name_part == "1g10gb-me"
    assert get_model("H100-80GB").profile("2g.20gb").name_part == "2g20gb"


@pytest.mark.parametrize(
    ("query", "want"),
    [
        ("H100-80GB", "H100-80GB"),
        ("h100", "H100-80GB"),
        ("NVIDIA H100 80GB HBM3", "H100-80GB"),
        ("NVIDIA A100-SXM4-40GB", "A100-40GB"),
        ("NVIDIA A100-PCIE-40GB", "A100-40GB"),
        ("V100M16", "V100-16GB"),
        ("V100M32", "V100-32GB"),
        ("Tesla T4", "T4"),
        ("G2", "G2"),
        ("A10", "A10"),
        ("RTX-PRO-6000", "RTX-PRO-6000-Blackwell-96GB"),
    ],
)
def test_lookup(query: str, want: str) -> None:
    model = find_model(query)
    assert model is not None
    assert model.name == want


def test_lookup_by_product_only() -> None:
    model = model_for_product("NVIDIA H100 NVL")
    assert model is not None and model.name == "H100-94GB-NVL"
    assert model_for_product("H100-80GB") is None


def test_unknown_model() -> None:
    assert find_model("Z9000") is None
    with pytest.raises(KeyError, match="unknown GPU model"):
        get_model("Z9000")


def test_non_mig_models_have_no_profiles() -> None:
    for name in ("L4", "L40S", "T4", "V100-16GB", "V100-32GB", "P100", "A10", "G2", "G3"):
        model = get_model(name)
        assert not model.mig_capable
        assert model.mig_engines is None


def test_dynamic_mig_totals_are_the_full_profile() -> None:
    model = get_model("H100-80GB")
    engines = model.mig_engines
    assert engines is not None
    full = model.profile("7g.80gb")
    assert engines.multiprocessors == full.engines.multiprocessors == 132
    assert model.mig_memory_mib == full.memory_mib


def _at(model: str, profile: str, start: int) -> MigPlacement:
    p = get_model(model).profile(profile)
    return MigPlacement(p, Placement(start, p.memory_slots))


def test_overlapping_placements_do_not_fit() -> None:
    existing = [_at("H100-80GB", "3g.40gb", 0)]
    assert not fits(existing, _at("H100-80GB", "4g.40gb", 0))
    assert fits(existing, _at("H100-80GB", "3g.40gb", 4))
    assert not fits(existing, _at("H100-80GB", "2g.20gb", 2))


def test_first_fit_strands_4g() -> None:
    # 3g at slot 0 leaves 4:4 free, but 4g.40gb may only start at 0.
    existing = [_at("H100-80GB", "3g.40gb", 0)]
    problem = placement_problem(existing, _at("H100-80GB", "4g.40gb", 0))
    assert problem is not None and "overlaps" in problem
    # The optimal order: 4g at 0, 3g at 4.
    assert fits([_at("H100-80GB", "4g.40gb", 0)], _at("H100-80GB", "3g.40gb", 4))


def test_invalid_start() -> None:
    problem = placement_problem([], _at("H100-80GB", "2g.20gb", 1))
    assert problem is not None and "cannot start at 1:2" in problem


def test_compute_slices_limit() -> None:
    # 8 memory slots but 7 compute slices: seven 1g plus a 1g.20gb at 6 would need 8.
    existing = [_at("A100-40GB", "1g.5gb", s) for s in range(6)]
    assert fits(existing, _at("A100-40GB", "1g.10gb", 6))
    existing.append(_at("A100-40GB", "1g.5gb", 6))
    assert not fits(existing, _at("A100-40GB", "1g.5gb", 5))


def test_b200_two_3g_fill_memory_with_a_compute_slice_left() -> None:
    a, b = _at("B200", "3g.90gb", 0), _at("B200", "3g.90gb", 4)
    assert layout_problems([a, b]) == []
    assert not fits([a, b], _at("B200", "1g.23gb", 6))


def test_a30_compute_limit_is_four() -> None:
    existing = [_at("A30", "2g.12gb", 0)]
    assert fits(existing, _at("A30", "2g.12gb", 2))
    assert not fits([*existing, _at("A30", "2g.12gb", 2)], _at("A30", "1g.6gb", 3))


def test_one_media_extension_per_gpu() -> None:
    existing = [_at("H100-80GB", "1g.10gb+me", 0)]
    problem = placement_problem(existing, _at("H100-80GB", "1g.10gb+me", 1))
    assert problem is not None
    assert fits(existing, _at("H100-80GB", "1g.10gb", 1))


def test_rtx_pro_me_all_counts_as_media_extension() -> None:
    existing = [_at("RTX-PRO-6000", "1g.24gb+me.all", 0)]
    assert not fits(existing, _at("RTX-PRO-6000", "1g.24gb+me", 3))
    assert fits(existing, _at("RTX-PRO-6000", "1g.24gb-me", 3))


def test_every_single_placement_fits_an_empty_gpu() -> None:
    for model in all_models():
        for profile in model.mig_profiles:
            for placement in profile.placements:
                assert fits([], MigPlacement(profile, placement)), (model.name, profile.name, placement)


def test_seven_1g_fill_every_8_slot_gpu() -> None:
    for model in all_models():
        if model.mig_memory_slots != 8:
            continue
        one_g = model.mig_profiles[0]
        layout = [MigPlacement(one_g, p) for p in one_g.placements]
        assert layout_problems(layout) == [], model.name
        assert len(layout) == 7
