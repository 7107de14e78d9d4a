"""The checkpoint file, version by version: pydantic models of what is on disk, one decoder per version
that checks the file's integrity, migrations up to the current version, and the checksums the writer
(``checkpoint.Checkpoint``) shares with the decoders.

Every version is a JSON object with an integer ``version``: the one thing later versions must keep, so
that a build can tell a file it cannot read (newer than it knows: refuse to start, leave it alone) from
a damaged one (moved aside, state rebuilt). ``canonical(x)`` below is ``json.dumps(x, sort_keys=True,
separators=(",", ":"))`` (ASCII); a claim is the same in both versions (``ClaimV1``), except that version 2
also knows the state ``UnprepareStarted`` (``ClaimV2``).

Version 1 (written up to ec33f9f)::

    {"bootId": "...", "checksum": "sha256:<hex>", "claims": {"<uid>": {claim}}, "version": 1}
    checksum = sha256("1\\n" + bootId + "\\n" + canonical(claims))

Version 2 (current) adds a checksum per claim, so damage is located to the claim it is in (and a later
recovery can keep the intact ones), and the file's checksum covers the header and the claim checksums
(a claim dropped, added or moved to another key is caught too). The writer hashes a claim only when it
changed. A claim's ``state`` may also be ``UnprepareStarted`` (its teardown has begun), and the file may
carry ``needsRebuild`` (why the records must be rebuilt from the API server before anything is cleaned
up; written only when set; the checksum covers it when it is not empty)::

    {"bootId": "...", "checksum": "sha256:<hex>", "claimChecksums": {"<uid>": "sha256:<hex>"},
     "claims": {"<uid>": {claim}}, ["needsRebuild": "<why>",] "version": 2}
    claimChecksums[uid] = sha256(canonical(claims[uid]))
    checksum = sha256(canonical({"bootId": ..., "claimChecksums": ..., ["needsRebuild": ...,] "version": 2}))

Both versions also check what the plugin would act on: a claim's UID is a file-name component (CDI spec,
MPS folder), its key is its UID, a sharing step names a known strategy, a GPU to time-slice and an MPS
folder under an ``mps`` folder. A file that fails these is as damaged as one that fails its checksum: the
plugin acts on it (removes files, stops daemons) at start-up.

Version 1 is read in pydantic's lax mode (its builds never checked types when reading: ``3.0`` for an
integer is taken as ``3``), so an upgrade does not discard a checkpoint its predecessor accepted;
unknown fields are errors in both (version-1 builds only ever added fields, each with a default).
Version 2 is read strictly.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable, Mapping
from typing import Any, Literal, NamedTuple, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

VERSION = 2
"""The version this build writes, and the newest it reads."""
M = TypeVar("M", bound=BaseModel)
SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
"""A claim UID (or MPS folder name) the plugin puts into file names: at most 128 characters, no separators."""


class CheckpointError(Exception):
    """The checkpoint cannot be used. ``code`` is stable; ``str()`` is ``<file>: <code>: [<key>: ]<message>``."""

    code = "checkpoint_error"

    def __init__(self, path: str, message: str, key: str = "") -> None:
        self.path = path
        self.key = key
        self.message = message
        super().__init__(f"{path}: {self.code}: {key + ': ' if key else ''}{message}")


class CheckpointCorrupt(CheckpointError):
    """Damaged or not a checkpoint: it does not parse, fails its checksum or its schema."""

    code = "checkpoint_corrupt"


class CheckpointVersionUnsupported(CheckpointError):
    """Written by a newer build, in a version this one does not know. Not corrupt: left as it is."""

    code = "checkpoint_version_unsupported"

    def __init__(self, path: str, found: int, newest: int = VERSION) -> None:
        self.found = found
        self.newest = newest
        super().__init__(
            path,
            f"{found} is newer than the versions this build reads (1 to {newest}); the file is left as it "
            f"is and the plugin does not start: run a build that reads version {found} (see docs/plugin.md)",
            key="version",
        )


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DeviceV1(_Model):
    request_names: list[str]
    pool_name: str
    device_name: str
    cdi_device_ids: list[str]
    share_id: str | None = None


class MigV1(_Model):
    gpu_uuid: str
    profile: str
    start: int
    created: bool
    uuid: str = ""
    gi_id: int = -1
    ci_id: int = 0

    @model_validator(mode="after")
    def _ids(self) -> MigV1:
        if self.start < 0 or self.gi_id < -1 or self.ci_id < 0:
            raise ValueError(f"placement start {self.start}, GPU instance {self.gi_id}, compute instance {self.ci_id}")
        return self


class SharingV1(_Model):
    strategy: str
    gpu_uuids: list[str]
    interval: str = ""
    mps_dir: str = ""
    active_thread_percentage: int | None = None
    pinned_memory_limit: str = ""
    shared: bool = False  # written since c3b10fa

    @model_validator(mode="after")
    def _usable(self) -> SharingV1:
        if self.strategy == "TimeSlicing":
            if not self.gpu_uuids:
                raise ValueError("time-slicing names no GPU")
        elif self.strategy == "MPS":
            if not is_mps_dir(self.mps_dir):
                raise ValueError(f"MPS folder {self.mps_dir!r} is not <state-dir>/mps/<name>")
        else:
            raise ValueError(f"unknown sharing strategy {self.strategy!r}")
        return self


def is_mps_dir(path: str) -> bool:
    """Whether ``path`` is an MPS daemon folder the plugin could have made: ``/<...>/mps/<safe name>``."""
    head, name = os.path.split(path)
    return (
        os.path.isabs(path)
        and os.path.normpath(path) == path
        and os.path.basename(head) == "mps"
        and (SAFE_NAME.fullmatch(name) is not None)
    )


def uid_problem(uid: str) -> str:
    """Why ``uid`` cannot name a claim's files ("" when it can)."""
    if SAFE_NAME.fullmatch(uid) is None:
        return f"claim UID {uid[:60]!r} is not 1-128 letters, digits, '.', '_' or '-' starting with a letter or digit"
    return ""


class ClaimV1(_Model):
    """One claim's record in version 1 (the fields of ``checkpoint.ClaimRecord``)."""

    uid: str
    namespace: str
    name: str
    state: Literal["PrepareStarted", "PrepareCompleted"]
    devices: list[DeviceV1] = []
    mig: list[MigV1] = []
    sharing: list[SharingV1] = []
    cdi_file: str = ""
    exclusive: list[str] = []

    @field_validator("uid")
    @classmethod
    def _uid(cls, uid: str) -> str:
        if problem := uid_problem(uid):
            raise ValueError(problem)
        return uid


class ClaimV2(ClaimV1):
    """One claim's record in version 2: version 1's, and a teardown that has begun (``UnprepareStarted``)."""

    state: Literal["PrepareStarted", "PrepareCompleted", "UnprepareStarted"]  # type: ignore[assignment]


def _keys_are_uids(claims: Mapping[str, ClaimV1]) -> None:
    for key, claim in claims.items():
        if key != claim.uid:
            raise ValueError(f"the claim under {key[:60]!r} has UID {claim.uid[:60]!r}")


class CheckpointV1(_Model):
    version: Literal[1]
    bootId: str
    checksum: str
    claims: dict[str, ClaimV1]

    @model_validator(mode="after")
    def _keys(self) -> CheckpointV1:
        _keys_are_uids(self.claims)
        return self


class CheckpointV2(_Model):
    version: Literal[2]
    bootId: str
    checksum: str
    claimChecksums: dict[str, str]
    claims: dict[str, ClaimV2]
    needsRebuild: str = ""

    @model_validator(mode="after")
    def _keys(self) -> CheckpointV2:
        _keys_are_uids(self.claims)
        return self


Current = CheckpointV2


class Decoded(NamedTuple):
    checkpoint: Current
    """The file's content, migrated to the current version."""
    version: int
    """The version it was written in."""


def canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _sha256(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def checksum_v1(boot_id: str, claims_text: str) -> str:
    return _sha256(f"1\n{boot_id}\n{claims_text}")


def claim_checksum(claim_text: str) -> str:
    """Version 2's checksum of one claim, from its canonical JSON."""
    return _sha256(claim_text)


def header_checksum(boot_id_text: str, claim_checksums_text: str, needs_rebuild_text: str | None = None) -> str:
    """Version 2's file checksum, from the JSON of the boot ID, the canonical JSON of ``claimChecksums`` and the
    JSON of ``needsRebuild`` when the file has it: the canonical JSON of ``{"bootId", "claimChecksums",
    ["needsRebuild",] "version": 2}``, built without a dict."""
    rebuild = "" if needs_rebuild_text is None else f',"needsRebuild":{needs_rebuild_text}'
    return _sha256(f'{{"bootId":{boot_id_text},"claimChecksums":{claim_checksums_text}{rebuild},"version":2}}')


def decode(raw: bytes, path: str) -> Decoded:
    """The checkpoint in ``raw`` (the bytes of file ``path``), migrated to the current version.

    Raises ``CheckpointVersionUnsupported`` for a version newer than ``VERSION``, ``CheckpointCorrupt``
    for anything else that is not a checkpoint of a known version with intact checksums."""
    try:
        data = json.loads(raw.decode("utf-8"))
    except ValueError as exc:  # JSON and UTF-8 errors
        raise CheckpointCorrupt(path, f"not JSON ({exc})") from exc
    except RecursionError:  # arrays or objects nested thousands of levels deep
        raise CheckpointCorrupt(path, "not JSON (nested too deeply)") from None
    if not isinstance(data, dict):
        raise CheckpointCorrupt(path, f"not a JSON object but {type(data).__name__}")
    version = data.get("version")
    if type(version) is not int:
        raise CheckpointCorrupt(path, f"not an integer: {version!r}", key="version")
    if version > VERSION:
        raise CheckpointVersionUnsupported(path, version)
    decoder = _DECODERS.get(version)
    if decoder is None:
        raise CheckpointCorrupt(path, f"no version {version} was ever written", key="version")
    return Decoded(decoder(data, path), version)


def _decode_v1(data: dict[str, Any], path: str) -> Current:
    doc = _validate(CheckpointV1, data, path, strict=False)
    if doc.checksum != checksum_v1(doc.bootId, canonical(data["claims"])):
        raise CheckpointCorrupt(path, "does not match the content", key="checksum")
    return migrate_v1(doc)


def _decode_v2(data: dict[str, Any], path: str) -> Current:
    claims, sums = data.get("claims"), data.get("claimChecksums")
    if isinstance(claims, dict) and isinstance(sums, dict):  # else the schema names what is wrong
        rebuild = json.dumps(data["needsRebuild"]) if data.get("needsRebuild") else None
        if data.get("checksum") != header_checksum(json.dumps(data.get("bootId")), canonical(sums), rebuild):
            raise CheckpointCorrupt(path, "does not match the boot ID and the claim checksums", key="checksum")
        if claims.keys() != sums.keys():
            odd = sorted(claims.keys() ^ sums.keys())
            raise CheckpointCorrupt(path, f"claims and claimChecksums name different claims: {odd}")
        damaged = sorted(uid for uid, claim in claims.items() if sums[uid] != claim_checksum(canonical(claim)))
        if damaged:
            more = f" (and {len(damaged) - 1} more claims)" if len(damaged) > 1 else ""
            raise CheckpointCorrupt(path, f"does not match its checksum{more}", key=f"claims[{_key(damaged[0])}]")
    return _validate(CheckpointV2, data, path, strict=True)


def migrate_v1(doc: CheckpointV1) -> CheckpointV2:
    """Version 1 → 2: the same claims, each checksummed, and the file's checksum over the new header."""
    sums = {uid: claim_checksum(canonical(claim.model_dump(mode="json"))) for uid, claim in doc.claims.items()}
    checksum = header_checksum(json.dumps(doc.bootId), canonical(sums))
    claims = {uid: ClaimV2.model_validate(claim.model_dump()) for uid, claim in doc.claims.items()}
    return CheckpointV2(version=2, bootId=doc.bootId, checksum=checksum, claimChecksums=sums, claims=claims)


_DECODERS: dict[int, Callable[[dict[str, Any], str], Current]] = {1: _decode_v1, 2: _decode_v2}


def _validate(model: type[M], data: dict[str, Any], path: str, *, strict: bool) -> M:
    try:
        return model.model_validate(data, strict=strict)
    except ValidationError as exc:
        first = exc.errors()[0]
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise CheckpointCorrupt(path, f"{first['msg']}{more}", key=_location(first["loc"])) from exc


def _location(loc: tuple[int | str, ...]) -> str:
    """``claims["u-1"].mig[0].start`` for pydantic's ``("claims", "u-1", "mig", 0, "start")``."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        elif part.isidentifier():
            text += f".{part}" if text else part
        else:
            text += f"[{_key(part)}]"
    return text


def _key(uid: str) -> str:
    return json.dumps(uid)
