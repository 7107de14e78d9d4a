"""The GPU catalog: what each NVIDIA model has, and where its MIG instances may go.

MIG geometry (profiles, memory slots, placements, media engines) comes from
``policy/data/mig_profiles.csv`` (its sources: ``data/README.md``; pinned in ``data/SHA256SUMS``). What the CSV
does not hold is kept in the tables below, each with its source:

The tables live in :mod:`gpupolicy.policy.catalog_data`:

- GPU-instance profile IDs (the ``ID`` column of ``nvidia-smi mig -lgip``; the number that
  appears in MIG device names such as ``gpu-1-mig-2g20gb-14-0``): from real ``-lgip`` outputs.
- SMs and copy engines per profile: real ``-lgip`` outputs for A100, A30, H100 SXM and RTX PRO
  6000; H100 NVL and H200 are taken to equal H100 SXM and H100 PCIe to equal A100 (both have
  fewer SMs); B200/GB200 SMs are proportional to compute slices. Those rows set ``sm_assumed``.
- Whole-GPU facts (NVML product names, SM count, compute capability, memory): NVIDIA data
  sheets and ``nvidia-smi`` outputs. The openb trace models ``G2`` and ``G3`` are not named in
  the trace; they are modelled as unknown 16 GiB GPUs (``memory_assumed``) so the trace can run.
- Media engines: the CSV's, except B200 (the guide's table reads one NVDEC for every profile, 7g
  included; Hopper's one-NVDEC-and-JPEG-per-slice pattern is used instead) and GB200 (unknown;
  only the OFA of ``+me`` and full profiles is modelled). Both set ``media_assumed``.
- Blank memory sizes: the full profile's memory (else the GPU's) times the share of memory slots.

Placement rules (:func:`valid_placements`, :func:`fits`) follow the MIG user guide: instances of
one GPU never share a memory slot, their compute slices add up to at most the GPU's total (7,
or 4 on A30 and RTX PRO 6000), and at most one media-extension (``+me``) instance exists per GPU.
Engines add up too: instances never hold more SMs, copy engines or media engines than the GPU's
full profile (this is what stops an RTX PRO ``+me.all`` instance, which takes all four NVDECs,
from sharing the GPU with instances that have an NVDEC of their own).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields, replace
from functools import cache
from importlib import resources

from gpupolicy.policy.catalog_data import MODELS, MigSource, ModelSpec

MIB = 1024 * 1024


@dataclass(frozen=True, order=True)
class Placement:
    """A MIG placement: ``size`` memory slots starting at slot ``start`` (``start:size``)."""

    start: int
    size: int

    @property
    def slots(self) -> range:
        return range(self.start, self.start + self.size)

    def __str__(self) -> str:
        return f"{self.start}:{self.size}"


@dataclass(frozen=True)
class Engines:
    """Engine counts of a MIG profile or a whole GPU."""

    multiprocessors: int
    copy_engines: int
    decoders: int
    encoders: int
    jpeg_engines: int
    ofa_engines: int


@dataclass(frozen=True)
class MigProfile:
    """One GPU-instance profile of one GPU model, e.g. H100-80GB ``3g.40gb``."""

    name: str
    gi_profile_id: int
    compute_slices: int
    memory_slots: int
    memory_mib: int
    max_instances: int
    placements: tuple[Placement, ...]
    engines: Engines
    gpu_compute_slices: int
    gpu_memory_slots: int
    gpu_engines: Engines | None = None
    assumed: bool = False
    memory_assumed: bool = False
    sm_assumed: bool = False
    media_assumed: bool = False

    @property
    def media_extension(self) -> bool:
        """``+me`` and ``+me.all`` profiles hold the GPU's single set of extra media engines."""
        return "+me" in self.name

    @property
    def graphics(self) -> bool:
        return "+gfx" in self.name

    @property
    def memory_bytes(self) -> int:
        return self.memory_mib * MIB

    @property
    def name_part(self) -> str:
        """The profile as it appears in a DRA device name: ``1g.10gb+me`` -> ``1g10gb-me``."""
        return re.sub(r"[^a-z0-9-]", "-", self.name.replace(".", "").lower()).strip("-")


@dataclass(frozen=True)
class GpuModel:
    """A GPU model as the catalog knows it."""

    name: str
    product_names: tuple[str, ...]
    architecture: str
    compute_capability: str
    brand: str
    memory_mib: int
    multiprocessors: int
    aliases: tuple[str, ...] = ()
    memory_assumed: bool = False
    mig_memory_slots: int = 0
    mig_compute_slices: int = 0
    mig_profiles: tuple[MigProfile, ...] = field(default=(), repr=False)

    @property
    def product_name(self) -> str:
        """The name NVML reports for the usual (first listed) variant."""
        return self.product_names[0]

    @property
    def mig_capable(self) -> bool:
        return bool(self.mig_profiles)

    @property
    def memory_bytes(self) -> int:
        return self.memory_mib * MIB

    @property
    def mig_engines(self) -> Engines | None:
        """Totals a dynamic-MIG GPU publishes: the per-engine maximum over its profiles."""
        if not self.mig_profiles:
            return None
        return _max_engines([p.engines for p in self.mig_profiles])

    @property
    def mig_memory_mib(self) -> int:
        """Memory a dynamic-MIG GPU publishes: the largest profile's."""
        return max((p.memory_mib for p in self.mig_profiles), default=self.memory_mib)

    def profile(self, name: str) -> MigProfile:
        for p in self.mig_profiles:
            if p.name == name:
                return p
        known = ", ".join(p.name for p in self.mig_profiles) or "none"
        raise KeyError(f"{self.name} has no MIG profile {name!r} (known: {known})")


def _max_engines(engines: list[Engines]) -> Engines:
    return Engines(
        multiprocessors=max(e.multiprocessors for e in engines),
        copy_engines=max(e.copy_engines for e in engines),
        decoders=max(e.decoders for e in engines),
        encoders=max(e.encoders for e in engines),
        jpeg_engines=max(e.jpeg_engines for e in engines),
        ofa_engines=max(e.ofa_engines for e in engines),
    )


# --- CSV reading ------------------------------------------------------------------------------

_MEDIA_RE = re.compile(r"(\d+)\s*(NVDEC|NVENC|JPEG|OFA)")


def _parse_media(text: str) -> tuple[dict[str, int], bool]:
    counts = {kind: int(n) for n, kind in _MEDIA_RE.findall(text)}
    return counts, text.strip() == "unknown" or not counts


def _parse_placements(text: str) -> tuple[Placement, ...]:
    out = []
    for part in text.split(";"):
        start, _, size = part.strip().partition(":")
        out.append(Placement(int(start), int(size)))
    return tuple(sorted(out))


def _suffix(profile: str) -> str:
    match = re.search(r"[+-].*$", profile)
    return match.group(0) if match else ""


def _profile_from_row(row: Mapping[str, str], src: MigSource, memory_base_mib: int) -> MigProfile:
    """One CSV row. A blank memory is ``memory_base_mib`` (the full-GPU profile's memory when known,
    else the GPU's) times the profile's share of memory slots, so sizes never add up past the GPU."""
    compute, slots = int(row["compute_slices"]), int(row["memory_slices"])
    sms, copy_engines = src.sms[(compute, slots)]
    media, media_unknown = _parse_media(row["media_extensions"])
    if src.media_like_h100:
        # The guide's B200 media columns read "1 NVDEC" for every profile, 7g included, which no
        # layout of 1g instances could honour; use Hopper's pattern (one NVDEC and JPEG per slice).
        media, media_unknown = {"NVDEC": compute, "JPEG": compute, "OFA": media.get("OFA", 0)}, True
    if media_unknown and not src.media_like_h100:
        # Unknown media engines: only the one OFA that +me and full-GPU profiles hold is modelled,
        # so the one-media-extension rule still shows in the counters.
        media = {"OFA": 1 if ("+me" in row["profile"] or compute == src.compute_slices) else 0}
    memory_text = row["memory_mib"].strip()
    memory = int(memory_text) if memory_text else (memory_base_mib * slots) // src.memory_slots
    return MigProfile(
        name=row["profile"],
        gi_profile_id=src.gi_ids[(compute, slots, _suffix(row["profile"]))],
        compute_slices=compute,
        memory_slots=slots,
        memory_mib=memory,
        max_instances=int(row["max_instances"]),
        placements=_parse_placements(row["placements"]),
        engines=Engines(
            multiprocessors=sms,
            copy_engines=copy_engines,
            decoders=media.get("NVDEC", 0),
            encoders=media.get("NVENC", 0),
            jpeg_engines=media.get("JPEG", 0),
            ofa_engines=media.get("OFA", 0),
        ),
        gpu_compute_slices=src.compute_slices,
        gpu_memory_slots=src.memory_slots,
        assumed="ASSUMED" in row["source"],
        memory_assumed=not memory_text,
        sm_assumed=src.sm_assumed,
        media_assumed=media_unknown,
    )


def read_mig_csv(text: str) -> dict[str, list[dict[str, str]]]:
    """Rows of a ``mig_profiles.csv`` text grouped by its ``gpu_model`` column."""
    grouped: dict[str, list[dict[str, str]]] = {}
    for row in csv.DictReader(io.StringIO(text)):
        grouped.setdefault(row["gpu_model"], []).append(row)
    return grouped


def _build(spec: ModelSpec, rows: Mapping[str, list[dict[str, str]]]) -> GpuModel:
    profiles: tuple[MigProfile, ...] = ()
    if spec.mig is not None:
        own = rows[spec.mig.csv_model]
        full = [r["memory_mib"] for r in own if int(r["memory_slices"]) == spec.mig.memory_slots and r["memory_mib"]]
        base = int(full[0]) if full else spec.memory_mib
        profiles = tuple(_profile_from_row(r, spec.mig, base) for r in own)
        totals = _max_engines([p.engines for p in profiles])
        profiles = tuple(replace(p, gpu_engines=totals) for p in profiles)
    return GpuModel(
        name=spec.name,
        product_names=spec.product_names,
        architecture=spec.architecture,
        compute_capability=spec.compute_capability,
        brand=spec.brand,
        memory_mib=spec.memory_mib,
        multiprocessors=spec.multiprocessors,
        aliases=spec.aliases,
        memory_assumed=spec.memory_assumed,
        mig_memory_slots=spec.mig.memory_slots if spec.mig else 0,
        mig_compute_slices=spec.mig.compute_slices if spec.mig else 0,
        mig_profiles=profiles,
    )


@cache
def all_models() -> tuple[GpuModel, ...]:
    """Every model of the catalog, in a fixed order."""
    text = resources.files("gpupolicy.policy").joinpath("data/mig_profiles.csv").read_text(encoding="utf-8")
    rows = read_mig_csv(text)
    return tuple(_build(spec, rows) for spec in MODELS)


def _key(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


@cache
def _index() -> tuple[dict[str, GpuModel], dict[str, GpuModel]]:
    by_name: dict[str, GpuModel] = {}
    by_product: dict[str, GpuModel] = {}
    for model in all_models():
        for name in (model.name, *model.aliases):
            by_name[_key(name)] = model
        for product in model.product_names:
            by_product[_key(product)] = model
    return by_name, by_product


def model_names() -> list[str]:
    return [m.name for m in all_models()]


@cache
def find_model(name: str) -> GpuModel | None:
    """A model by catalog name or alias (case and punctuation ignored), or by NVML product name."""
    by_name, by_product = _index()
    key = _key(name)
    return by_name.get(key) or by_product.get(key)


def get_model(name: str) -> GpuModel:
    model = find_model(name)
    if model is None:
        raise KeyError(f"unknown GPU model {name!r} (known: {', '.join(model_names())})")
    return model


def model_for_product(product_name: str) -> GpuModel | None:
    """The model whose NVML product name is ``product_name`` (e.g. ``NVIDIA H100 80GB HBM3``)."""
    return _index()[1].get(_key(product_name))


# --- placement rules --------------------------------------------------------------------------


@dataclass(frozen=True)
class MigPlacement:
    """One MIG instance on a GPU: a profile at a placement."""

    profile: MigProfile
    placement: Placement

    def __str__(self) -> str:
        return f"{self.profile.name}@{self.placement}"


def valid_placements(profile: MigProfile) -> tuple[Placement, ...]:
    return profile.placements


def placement_problem(existing: Iterable[MigPlacement], new: MigPlacement) -> str | None:
    """Why ``new`` cannot be added to a GPU that already holds ``existing``, or None if it fits."""
    profile = new.profile
    if new.placement not in profile.placements:
        allowed = ", ".join(str(p) for p in profile.placements)
        return f"{profile.name} cannot start at {new.placement} (allowed: {allowed})"
    current = list(existing)
    used = {slot for inst in current for slot in inst.placement.slots}
    overlap = sorted(used.intersection(new.placement.slots))
    if overlap:
        return f"{new} overlaps memory slots {overlap} already in use"
    compute = sum(inst.profile.compute_slices for inst in current) + profile.compute_slices
    if compute > profile.gpu_compute_slices:
        return f"{new} needs {compute} compute slices in total, the GPU has {profile.gpu_compute_slices}"
    if profile.media_extension and any(inst.profile.media_extension for inst in current):
        return f"{new} is a second media-extension instance; a GPU has one"
    engines = _engine_excess([*current, new])
    if engines:
        return f"{new} needs more {engines} than the GPU has"
    same = sum(1 for inst in current if inst.profile.name == profile.name) + 1
    if same > profile.max_instances:
        return f"{new} would be instance {same} of {profile.name}; at most {profile.max_instances}"
    return None


def _engine_excess(instances: list[MigPlacement]) -> str:
    """The first engine kind (SMs, copy engines, media engines) the instances need more of than the GPU has."""
    totals = instances[-1].profile.gpu_engines
    if totals is None:
        return ""
    for f in fields(Engines):
        if sum(getattr(i.profile.engines, f.name) for i in instances) > getattr(totals, f.name):
            return f.name.replace("_", " ")
    return ""


def fits(existing: Iterable[MigPlacement], new: MigPlacement) -> bool:
    """Whether ``new`` can join ``existing`` on one GPU under the MIG placement rules."""
    return placement_problem(existing, new) is None


def layout_problems(instances: Iterable[MigPlacement]) -> list[str]:
    """Every rule a whole layout breaks, checking instances in the given order."""
    placed: list[MigPlacement] = []
    problems = []
    for inst in instances:
        problem = placement_problem(placed, inst)
        if problem is None:
            placed.append(inst)
        else:
            problems.append(problem)
    return problems
