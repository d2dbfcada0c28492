"""Talos version parsing, ordering and the offered list (factory spec §7.1, §2.4, §2.5)."""

from __future__ import annotations

import random

import pytest

from services.catalog.versions import (
    InvalidVersion,
    Version,
    VersionPolicy,
    latest_stable,
    parse,
    parse_requested,
    parse_tolerant,
    require_available,
    supports_factory_talosctl,
    supports_overlays,
)
from services.shared.config import ConfigError
from services.shared.errors import InvalidArgument, NotFound


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1.2.3", Version(1, 2, 3)),
        ("0.0.0", Version(0, 0, 0)),
        ("1.7.0-alpha.0", Version(1, 7, 0, ("alpha", 0))),
        ("1.7.0-rc.1+build.5", Version(1, 7, 0, ("rc", 1), ("build", "5"))),
        ("1.7.0-0a.-x", Version(1, 7, 0, ("0a", "-x"))),
        ("1.15.0-alpha.0-12-gabc", Version(1, 15, 0, ("alpha", "0-12-gabc"))),
    ],
)
def test_parse_strict(text: str, expected: Version) -> None:
    assert parse(text) == expected
    assert str(parse(text)) == text


@pytest.mark.parametrize(
    "text",
    ["", "v1.2.3", "1.7", "1", "01.2.3", "1.02.3", "1.2.03", "1.2.3-", "1.2.3-rc..1", "1.2.3-rc.01", "1.2.3+",
     "1.2.3+a_b", "1.2.x", "1..3", "1.2.3-rc_1", "latest", "18446744073709551616.0.0"],
)  # fmt: skip
def test_parse_strict_rejects(text: str) -> None:
    with pytest.raises(InvalidVersion):
        parse(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("v1.7.0", "1.7.0"),
        ("1.7.0", "1.7.0"),
        ("  v1.7.1  ", "1.7.1"),
        ("v1.7", "1.7.0"),
        ("v1", "1.0.0"),
        ("v01.07.05", "1.7.5"),
        ("v1.7.0-beta.0", "1.7.0-beta.0"),
        ("v1.7.00", "1.7.0"),
    ],
)
def test_parse_tolerant(text: str, expected: str) -> None:
    assert str(parse_tolerant(text)) == expected


@pytest.mark.parametrize("text", ["latest", "sha256-abc.sig", "v1.7-rc.0", "main", "", "vv1.2.3", "V1.2.3"])
def test_parse_tolerant_rejects(text: str) -> None:
    with pytest.raises(InvalidVersion):
        parse_tolerant(text)


def test_invalid_version_is_invalid_argument() -> None:
    with pytest.raises(InvalidArgument):
        parse("nope")


def test_parse_requested_prepends_v_and_is_strict() -> None:
    assert parse_requested("v1.7.0") == parse_requested("1.7.0") == Version(1, 7, 0)
    for bad in ("v1.7", "vv1.7.0", "1.7"):
        with pytest.raises(InvalidVersion):
            parse_requested(bad)


def test_semver_precedence() -> None:
    # semver.org §11 example, shuffled and sorted back.
    texts = ("1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta", "1.0.0-beta.2", "1.0.0-beta.11",
             "1.0.0-rc.1", "1.0.0", "1.0.1", "1.1.0", "1.10.0", "2.0.0")  # fmt: skip
    ordered = [parse(t) for t in texts]
    shuffled = ordered[:]
    random.Random(7).shuffle(shuffled)
    assert sorted(shuffled) == ordered
    assert parse("1.0.0-rc.1") < parse("1.0.0") <= parse("1.0.0") < parse("1.0.1")
    assert parse("1.0.0") > parse("1.0.0-rc.1") >= parse("1.0.0-rc.1")


def test_build_metadata_has_no_precedence() -> None:
    assert parse("1.2.3+a") == parse("1.2.3+b") == parse("1.2.3")
    assert hash(parse("1.2.3+a")) == hash(parse("1.2.3"))
    assert not parse("1.2.3+a") < parse("1.2.3")


def test_tag() -> None:
    assert parse("1.7.0-alpha.1").tag == "v1.7.0-alpha.1"


UPSTREAM_TAGS = ["latest", "v1.1.2", "v1.2.0", "v1.5.0", "v1.5.1", "v1.6.0-alpha.0", "v1.6.0", "v1.6.1",
                 "v1.7.0-alpha.0", "v1.7.0-beta.1", "v1.7.0-rc.0", "v1.7.0-foo.1", "v1.7.0-alpha", "v1.7.0-alpha.x",
                 "v1.7.0-alpha.1.2", "sha256-deadbeef.sig", "v1.7.0-alpha.0-12-gabc123"]  # fmt: skip


@pytest.mark.parametrize(
    ("tags", "min_version", "broken", "expected"),
    [
        (  # pre-releases only for the newest minor line, only alpha/beta/rc.N
            UPSTREAM_TAGS,
            "1.2.0",
            [],
            ["v1.2.0", "v1.5.0", "v1.5.1", "v1.6.0", "v1.6.1", "v1.7.0-alpha.0", "v1.7.0-beta.1", "v1.7.0-rc.0"],
        ),
        (UPSTREAM_TAGS, "1.5.1", ["1.6.0", "1.7.0-beta.1"], ["v1.5.1", "v1.6.1", "v1.7.0-alpha.0", "v1.7.0-rc.0"]),
        (  # once 1.7.0 is out, 1.7 pre-releases stay; the max decides the line, not stability
            ["v1.6.0-alpha.0", "v1.6.0", "v1.7.0-rc.0", "v1.7.0"],
            "1.2.0",
            [],
            ["v1.6.0", "v1.7.0-rc.0", "v1.7.0"],
        ),
        (  # a newer minor's pre-release hides the older line's pre-releases
            ["v1.7.0-rc.0", "v1.8.0-alpha.0"],
            "1.2.0",
            [],
            ["v1.8.0-alpha.0"],
        ),
        (  # the max is computed before filtering: an odd tag can hide legitimate pre-releases (§18.14)
            ["v1.7.0-alpha.0", "v1.8.0-weird.1"],
            "1.2.0",
            [],
            [],
        ),
        (["v1.7", "v1.7.0", "1.7.0"], "1.2.0", [], ["v1.7.0"]),  # tolerant parse, listed once
        (["v1.1.9", "v1.2.0-rc.0"], "1.2.0", [], []),  # 1.2.0-rc.0 < min 1.2.0
        (["v1.13.1", "v1.13.0"], "1.2.0", ["1.13.1"], ["v1.13.0"]),  # IF broken_versions_test
        (["latest", "main"], "1.2.0", [], []),
        ([], "1.2.0", [], []),
    ],
)
def test_available_versions(tags: list[str], min_version: str, broken: list[str], expected: list[str]) -> None:
    policy = VersionPolicy.from_config(min_version, broken)
    assert [v.tag for v in policy.available(tags)] == expected


def test_default_policy() -> None:
    assert VersionPolicy.from_config() == VersionPolicy(Version(1, 2, 0), ())


@pytest.mark.parametrize(
    ("min_version", "broken", "message"),
    [
        ("1.2.0", ["1.13.1", "v1.13.2"], 'failed to parse broken Talos version "v1.13.2": '),
        ("1.2.0", ["1.13"], 'failed to parse broken Talos version "1.13": '),
        ("v1.2.0", [], "failed to parse minimum Talos version: "),
        ("1.2", [], "failed to parse minimum Talos version: "),
    ],
)
def test_config_versions_are_strict(min_version: str, broken: list[str], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        VersionPolicy.from_config(min_version, broken)
    assert str(info.value).startswith(message)


def test_latest_stable() -> None:
    versions = [parse(t) for t in ("1.6.0", "1.6.1", "1.7.0-rc.0")]
    assert latest_stable(versions) == Version(1, 6, 1)
    assert latest_stable([parse("1.7.0-rc.0")]) is None
    assert latest_stable([]) is None


def test_require_available() -> None:
    available = [parse("1.6.0"), parse("1.7.0")]
    assert require_available(parse("1.7.0"), available) == Version(1, 7, 0)
    with pytest.raises(NotFound) as info:
        require_available(parse("1.5.0-alpha.0"), available)
    assert info.value.message == "version 1.5.0-alpha.0 is not available"


@pytest.mark.parametrize(
    ("version", "overlays", "talosctl"),
    [
        ("1.6.7", False, False),
        ("1.7.0-alpha.0", True, False),  # quirks count a pre-release as its release (spec §11)
        ("1.7.0", True, False),
        ("1.11.0-alpha.2", True, False),
        ("1.11.0-alpha.3", True, True),
        ("1.11.0", True, True),
    ],
)
def test_version_gates(version: str, overlays: bool, talosctl: bool) -> None:
    assert supports_overlays(parse(version)) is overlays
    assert supports_factory_talosctl(parse(version)) is talosctl
