"""Checkpoint versions: a version-1 file (as that build wrote it) read after the upgrade and written back as
version 2; a newer version refused and left alone; damage located by the per-claim checksums."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from gpupolicy.plugin.kubelet.checkpoint import (
    Checkpoint,
    ClaimRecord,
    ClaimState,
    MigOp,
    PreparedDevice,
    SharingOp,
)
from gpupolicy.plugin.kubelet.checkpoint_schema import (
    VERSION,
    CheckpointCorrupt,
    CheckpointV1,
    CheckpointVersionUnsupported,
    canonical,
    checksum_v1,
    decode,
    migrate_v1,
)
from gpupolicy.policy.k8s.ids import ClaimUID

V1_FILE = Path(__file__).parent / "testdata" / "checkpoint-v1.json"
"""Written by the version-1 writer (commit ec33f9f) from the records below, and kept byte for byte."""
V1_BOOT = "8d1f3a52-6c4b-4e0f-9b7a-2c1d0e9f8a76"
DRIVER = "k8s.gpu.gpupolicy.dev"
U1, U2, U3, U4 = "0f6c1a52-8a0e-4c55-9a43-7d0c1b2e3f01", *(f"1a2b3c4d-0000-4000-8000-00000000000{i}" for i in (2, 3, 4))
GPU = "-0000-1111-2222-333344445555"
V1_RECORDS = [
    ClaimRecord(
        uid=ClaimUID(U1),
        namespace="ml",
        name="train-mig",
        state=ClaimState.PREPARE_COMPLETED,
        devices=(
            PreparedDevice(
                ("mig",), "node-a", "gpu-0-mig-1g10gb-19-3", (f"{DRIVER}/claim={U1}-gpu-0-mig-1g10gb-19-3",)
            ),
        ),
        mig=(MigOp(f"GPU-5d1f0c2a{GPU}", "1g.10gb", 3, True, f"MIG-9a8b7c6d{GPU}", 9, 0),),
        sharing=(
            SharingOp(
                "MPS",
                (f"MIG-9a8b7c6d{GPU}",),
                mps_dir=f"/var/lib/gpupolicy/mps/{U1}",
                active_thread_percentage=50,
                pinned_memory_limit="4G",
            ),
        ),
        cdi_file=f"/var/run/cdi/{DRIVER}-claim_{U1}.json",
        exclusive=(f"mig:GPU-5d1f0c2a{GPU}:3",),
    ),
    ClaimRecord(
        uid=ClaimUID(U2),
        namespace="default",
        name="shared-ts",
        state=ClaimState.PREPARE_COMPLETED,
        devices=(PreparedDevice(("a", "b"), "node-a", "gpu-2", (f"{DRIVER}/claim={U2}-gpu-2",), "share-7"),),
        sharing=(SharingOp("TimeSlicing", (f"GPU-22222222{GPU}",), interval="Long", shared=True),),
        cdi_file=f"/var/run/cdi/{DRIVER}-claim_{U2}.json",
    ),
    ClaimRecord(
        uid=ClaimUID(U3),
        namespace="default",
        name="whole-gpus",
        state=ClaimState.PREPARE_COMPLETED,
        devices=tuple(
            PreparedDevice(("gpus",), "node-a", f"gpu-{i}", (f"{DRIVER}/claim={U3}-gpu-{i}",)) for i in (4, 5)
        ),
        cdi_file=f"/var/run/cdi/{DRIVER}-claim_{U3}.json",
        exclusive=(f"gpu:GPU-44444444{GPU}", f"gpu:GPU-55555555{GPU}"),
    ),
    ClaimRecord(
        uid=ClaimUID(U4),
        namespace="ns-ü",  # not a valid namespace: here for the non-ASCII escape in the canonical JSON
        name="interrupted",
        state=ClaimState.PREPARE_STARTED,
        mig=(MigOp(f"GPU-66666666{GPU}", "3g.40gb", 4, True),),
        exclusive=(f"mig:GPU-66666666{GPU}:4",),
    ),
]


def _state(tmp_path: Path) -> Checkpoint:
    shutil.copyfile(V1_FILE, tmp_path / "checkpoint.json")
    return Checkpoint(tmp_path, V1_BOOT)


def test_a_version_1_checkpoint_is_read_after_the_upgrade_and_written_back_as_version_2(tmp_path: Path) -> None:
    cp = _state(tmp_path)
    loaded = cp.load()
    assert loaded.version == 1 and loaded.corrupted is None and not loaded.boot_changed
    assert loaded.records == {r.uid: r for r in V1_RECORDS}
    assert cp.path.read_bytes() == V1_FILE.read_bytes()  # reading alone changes nothing
    cp.save(loaded.records)
    old, new = json.loads(V1_FILE.read_bytes()), json.loads(cp.path.read_bytes())
    assert new["version"] == VERSION == 2 and new["bootId"] == V1_BOOT
    assert new["claims"] == old["claims"]  # the claims as they were, now each with its checksum
    assert new["claimChecksums"] == migrate_v1(CheckpointV1.model_validate(old)).claimChecksums
    again = Checkpoint(tmp_path, V1_BOOT).load()
    assert again.version == 2 and again.records == loaded.records
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.json"]


def test_a_version_1_file_from_before_shared_sharing_is_read(tmp_path: Path) -> None:
    """Builds before c3b10fa wrote no ``shared``; version 1 is read as leniently as its own builds read it."""
    doc = json.loads(V1_FILE.read_bytes())
    for claim in doc["claims"].values():
        for op in claim["sharing"]:
            del op["shared"]
        claim["mig"] = [{**m, "start": float(m["start"])} for m in claim["mig"]]  # 3.0: coerced to 3
    doc["checksum"] = checksum_v1(V1_BOOT, canonical(doc["claims"]))
    (tmp_path / "checkpoint.json").write_text(json.dumps(doc))
    records = Checkpoint(tmp_path, V1_BOOT).load().records
    assert records[ClaimUID(U2)].sharing[0].shared is False and records[ClaimUID(U1)].mig[0].start == 3


def test_a_migrated_version_1_checkpoint_is_a_valid_version_2_one() -> None:
    migrated = migrate_v1(CheckpointV1.model_validate_json(V1_FILE.read_bytes()))
    checkpoint, version = decode(canonical(migrated.model_dump(mode="json")).encode(), "f")
    assert version == 2 and checkpoint == migrated


def test_the_writer_writes_canonical_json_and_the_checksums_the_decoder_expects(tmp_path: Path) -> None:
    cp = Checkpoint(tmp_path, 'boot "ü"')
    cp.save({r.uid: r for r in V1_RECORDS})
    raw = cp.path.read_bytes()
    assert raw == canonical(json.loads(raw)).encode()
    checkpoint, version = decode(raw, str(cp.path))
    assert version == 2 and set(checkpoint.claims) == {U1, U2, U3, U4}


@pytest.mark.parametrize(
    "newer",
    [
        lambda doc: {**doc, "version": 3},
        lambda doc: {**doc, "version": 3, "claims": [], "somethingNew": {"a": 1}},
        lambda doc: {"version": 99, "sections": "a format this build has never seen"},
    ],
    ids=["v3-same-shape", "v3-new-fields", "v99"],
)
def test_a_newer_version_is_refused_and_the_file_left_as_it_is(tmp_path: Path, newer) -> None:  # type: ignore[no-untyped-def]
    cp = Checkpoint(tmp_path, V1_BOOT)
    cp.save({r.uid: r for r in V1_RECORDS})
    raw = json.dumps(newer(json.loads(cp.path.read_bytes())), indent=1).encode()
    cp.path.write_bytes(raw)
    with pytest.raises(CheckpointVersionUnsupported) as caught:
        cp.load()
    error = caught.value
    assert error.code == "checkpoint_version_unsupported" and error.path == str(cp.path)
    assert (error.found, error.newest, error.key) == (json.loads(raw)["version"], 2, "version")
    assert str(error).startswith(f"{cp.path}: checkpoint_version_unsupported: version: {error.found} is newer")
    assert cp.path.read_bytes() == raw and sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.json"]


def _flip(raw: bytes, inside: bytes) -> bytes:
    """``raw`` with the lowest bit of the first letter after ``inside`` flipped (it still parses)."""
    at = raw.index(inside) + len(inside)
    return raw[:at] + bytes([raw[at] ^ 1]) + raw[at + 1 :]


def test_a_flipped_byte_inside_a_claim_is_found_by_that_claims_checksum(tmp_path: Path) -> None:
    cp = Checkpoint(tmp_path, V1_BOOT)
    cp.save({r.uid: r for r in V1_RECORDS})
    flipped = _flip(cp.path.read_bytes(), b'"name":"whole-')  # whole-gpus → whole-fpus
    json.loads(flipped)
    with pytest.raises(CheckpointCorrupt) as caught:
        decode(flipped, str(cp.path))
    assert caught.value.key == f'claims["{U3}"]' and caught.value.code == "checkpoint_corrupt"
    assert str(caught.value) == f'{cp.path}: checkpoint_corrupt: claims["{U3}"]: does not match its checksum'
    cp.path.write_bytes(flipped)
    result = cp.load()  # the corrupt-checkpoint path, as for any damage
    assert result.records == {} and result.corrupted == tmp_path / "checkpoint.json.corrupt-0"
    assert result.corrupted.read_bytes() == flipped


@pytest.mark.parametrize(
    ("damage", "key"),
    [
        (lambda doc: doc["claimChecksums"].update({U1: doc["claimChecksums"][U2]}), "checksum"),
        (lambda doc: [doc["claims"].pop(U1), doc["claimChecksums"].pop(U1)], "checksum"),
        (lambda doc: doc.update(bootId="another"), "checksum"),
        (lambda doc: doc["claims"].pop(U1), ""),
        (lambda doc: doc["claims"][U1]["mig"][0].update(start="3"), f'claims["{U1}"]'),
        (lambda doc: doc.update(claims=[]), "claims"),
        (lambda doc: doc.update(extra=1), "extra"),
    ],
    ids=["claim-checksum", "claim-removed", "boot-id", "claim-without-its-checksum", "claim-edited", "shape", "field"],
)
def test_damage_that_still_parses_is_corrupt_and_located(tmp_path: Path, damage, key: str) -> None:  # type: ignore[no-untyped-def]
    cp = Checkpoint(tmp_path, V1_BOOT)
    cp.save({r.uid: r for r in V1_RECORDS})
    doc = json.loads(cp.path.read_bytes())
    damage(doc)
    with pytest.raises(CheckpointCorrupt) as caught:
        decode(json.dumps(doc).encode(), "f")
    assert caught.value.key == key


def test_a_damaged_version_1_file_is_corrupt(tmp_path: Path) -> None:
    raw = _flip(V1_FILE.read_bytes(), b'"name":"whole-')
    with pytest.raises(CheckpointCorrupt) as caught:
        decode(raw, "f")
    assert caught.value.key == "checksum"
    (tmp_path / "checkpoint.json").write_bytes(raw)
    assert Checkpoint(tmp_path, V1_BOOT).load().corrupted == tmp_path / "checkpoint.json.corrupt-0"
