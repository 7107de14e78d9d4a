"""Semantic versions: strict parsing and semver 2.0.0 precedence."""

from __future__ import annotations

import contextlib
import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from gpupolicy.policy.semver import Semver, SemverError, SemverField


@pytest.mark.parametrize("text", ["1.2.3", "550.54.15", "0.0.0", "1.0.0-rc.1+build.5", "1.0.0-0a.x-y", "1.0.0+001"])
def test_valid_versions_round_trip(text: str) -> None:
    assert str(Semver.parse(text)) == text


@pytest.mark.parametrize(
    "text",
    [
        "",
        "1",
        "1.2",
        "v1.2.3",
        "01.2.3",
        "1.02.3",
        "1.2.03",
        "1.2.3-01",
        "1.2.3-",
        "1.2.3+",
        "1.2.3.4",
        "1.2.3-a..b",
        " 1.2.3",
    ],
)
def test_rejects_non_strict_versions(text: str) -> None:
    with pytest.raises(SemverError, match="invalid semver"):
        Semver.parse(text)


def test_parts() -> None:
    v = Semver.parse("550.54.15-beta.2")
    assert (v.major, v.minor, v.patch, v.prerelease) == (550, 54, 15, ("beta", 2))


def test_precedence_from_the_semver_spec() -> None:
    chain = ["1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta", "1.0.0-beta.2", "1.0.0-beta.11",
             "1.0.0-rc.1", "1.0.0", "1.0.1", "1.1.0", "2.0.0", "10.0.0"]  # fmt: skip
    versions = [Semver.parse(t) for t in chain]
    assert sorted(reversed(versions)) == versions
    for a, b in itertools.pairwise(versions):
        assert a.compare_to(b) == -1 and b.compare_to(a) == 1


def test_build_metadata_is_ignored_in_comparison() -> None:
    assert Semver.parse("1.0.0+a") == Semver.parse("1.0.0+b")
    assert hash(Semver.parse("1.0.0+a")) == hash(Semver.parse("1.0.0"))
    assert Semver.parse("1.0.0+a").compare_to(Semver.parse("1.0.0")) == 0


class _Model(BaseModel):
    version: SemverField


def test_pydantic_field() -> None:
    assert _Model.model_validate({"version": "1.2.3"}).model_dump() == {"version": "1.2.3"}
    with pytest.raises(ValidationError, match="invalid_semver"):
        _Model.model_validate({"version": "1.2"})
    with pytest.raises(ValidationError, match="invalid_semver"):
        _Model.model_validate({"version": 1})


@given(st.text(max_size=30))
def test_arbitrary_text_never_crashes(text: str) -> None:
    with contextlib.suppress(SemverError):
        Semver.parse(text)


@given(st.tuples(st.integers(0, 99), st.integers(0, 99), st.integers(0, 99)),
       st.tuples(st.integers(0, 99), st.integers(0, 99), st.integers(0, 99)))  # fmt: skip
def test_release_order_is_numeric(a: tuple[int, int, int], b: tuple[int, int, int]) -> None:
    va, vb = Semver.parse(".".join(map(str, a))), Semver.parse(".".join(map(str, b)))
    assert (va < vb) == (a < b)


@pytest.mark.parametrize(
    ("text", "want"), [("v1.0.0", "1.0.0"), ("1.0", "1.0.0"), ("01.01.01", "1.1.1"), ("2", "2.0.0")]
)
def test_normalized_parsing_like_kubernetes(text: str, want: str) -> None:
    assert str(Semver.parse(text, normalize=True)) == want
    with pytest.raises(SemverError):
        Semver.parse(text)


def test_normalized_short_version_rejects_prerelease() -> None:
    with pytest.raises(SemverError, match="short version"):
        Semver.parse("1.0-rc1", normalize=True)
