"""Extension compatibility constraints (imager spec §1.3; blang/semver ranges, Talos `trim`)."""

from __future__ import annotations

import pytest

from services.builder.assets.version_constraint import (
    SemVer,
    check_constraint,
    parse_range,
    parse_tolerant,
    parse_version,
    trim_v,
)
from services.shared.errors import InvalidArgument

# (constraint, Talos version, satisfied)
TABLE = [
    ("", "v1.0.0", True),
    (">= v1.12.0", "v1.12.0", True),
    (">= v1.12.0", "v1.11.5", False),
    (">= v1.12.0", "v1.12.0-alpha.1", True),  # pre-release of the profile version is ignored
    ("< v1.12.0", "v1.12.0-alpha.1", False),
    (">= 1.0.0", "1.0.0", True),
    (">=v1.10.0 <v2.0.0", "v1.15.0", True),
    (">= 1.8.0 < 1.10.0", "v1.9.4", True),  # a space after an operator does not split
    (">= 1.8.0 < 1.10.0", "v1.10.0", False),
    ("<1.9.0 || >=1.10.0", "v1.9.3", False),
    ("<1.9.0 || >=1.10.0", "v1.8.0", True),
    ("<1.9.0 || >=1.10.0", "v1.10.0", True),
    ("1.10.0", "v1.10.0", True),
    ("=1.10.0", "v1.10.1", False),
    ("==1.10.0", "v1.10.0", True),
    ("!1.10.0", "v1.10.0", False),
    ("!=1.10.0", "v1.10.1", True),
    (">1.10.0", "v1.10.0", False),
    ("<=1.10.0", "v1.10.0", True),
    ("1.9.x", "v1.9.3", True),
    ("1.9.x", "v1.10.0", False),
    (">1.2.x", "v1.3.0", True),
    (">1.2.x", "v1.2.9", False),
    ("<=1.2.x", "v1.2.9", True),
    ("<=1.2.x", "v1.3.0", False),
    ("<1.2.x", "v1.2.0", False),
    (">=1.2.x", "v1.2.0", True),
    ("!=1.2.x", "v1.2.5", False),
    ("!=1.2.x", "v1.3.0", False),  # blang expands to `<1.2.0 >=1.3.0`, ANDed: matches nothing
    ("1.x", "v1.99.0", True),
    ("1.x", "v2.0.0", False),
    (">= 1.x", "v1.0.0", True),
    (">= 1.12.0-alpha.0", "v1.12.0", True),
    ("< 1.12.0-beta.0", "v1.12.0", False),
]


@pytest.mark.parametrize(("constraint", "version", "ok"), TABLE)
def test_table(constraint: str, version: str, ok: bool) -> None:
    if ok:
        check_constraint(constraint, version)
    else:
        with pytest.raises(InvalidArgument):
            check_constraint(constraint, version)


def test_failure_text_exact() -> None:
    with pytest.raises(InvalidArgument) as err:
        check_constraint(">= v1.12.0", "v1.11.5-beta.2")
    assert err.value.message == "version constraint >= v1.12.0 can't be satisfied with Talos version 1.11.5"


@pytest.mark.parametrize(
    ("constraint", "message"),
    [
        (">= foo", 'error parsing Talos version constraint: Could not get version from string: ">=foo"'),
        ("|| >=1.0.0", "error parsing Talos version constraint: First element in range is '||'"),
        (">=1.0.0 ||", "error parsing Talos version constraint: Last element in range is '||'"),
        ("~1.0.0", 'Could not parse Range "~1.0.0": Could not parse comparator "~" in "~1.0.0"'),
        (">=1.0", 'Could not parse Range ">=1.0": Could not parse version "1.0" in ">=1.0"'),
        (">=01.0.0", 'Could not parse version "01.0.0"'),
    ],
)
def test_bad_constraints(constraint: str, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message.replace("|", r"\|").replace("(", r"\(")):
        check_constraint(constraint, "v1.12.0")


def test_bad_talos_version() -> None:
    with pytest.raises(InvalidArgument, match="invalid Talos version 'latest'"):
        check_constraint(">= 1.0.0", "latest")


@pytest.mark.parametrize(
    ("text", "trimmed"),
    [(">= v1.0.0", ">= 1.0.0"), ("v1.0.0 || v2.0.0", "1.0.0 || 2.0.0"), ("vv1.0.0", "v1.0.0"), ("dev", "dev")],
)
def test_trim_v(text: str, trimmed: str) -> None:
    assert trim_v(text) == trimmed


@pytest.mark.parametrize(
    ("text", "version"),
    [
        ("v1.12", SemVer(1, 12, 0)),
        (" v01.02.03 ", SemVer(1, 2, 3)),
        ("1.14.0-alpha.1", SemVer(1, 14, 0, ("alpha", "1"))),
        ("1.2.3+build.5", SemVer(1, 2, 3)),
    ],
)
def test_parse_tolerant(text: str, version: SemVer) -> None:
    assert parse_tolerant(text) == version


@pytest.mark.parametrize("text", ["1.2-alpha", "1.2.3-", "1.2.3-01", "a.b.c", ""])
def test_parse_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_tolerant(text)


def test_precedence() -> None:
    # semver.org §11 example, in increasing order.
    ordered = ["1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta", "1.0.0-beta.2", "1.0.0-beta.11"]
    ordered += ["1.0.0-rc.1", "1.0.0", "1.0.1", "1.1.0", "2.0.0"]
    versions = [parse_version(v) for v in ordered]
    assert sorted(reversed(versions)) == versions
    assert parse_range(">=1.0.0-alpha.beta <1.0.0")(parse_version("1.0.0-beta.11"))
