"""Image reference and digest parsing (services/shared/oci/reference.py)."""

from __future__ import annotations

import pytest

from services.shared.errors import InvalidArgument
from services.shared.oci.reference import (
    Reference,
    digest_of,
    is_digest,
    is_registry_host,
    parse_reference,
    referrers_tag,
    registry_scheme,
    signature_tag,
    validate_digest,
)

HEX = "a" * 64
DIGEST = f"sha256:{HEX}"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ghcr.io/siderolabs/imager:v1.9.0", Reference("ghcr.io", "siderolabs/imager", "v1.9.0")),
        ("ghcr.io/siderolabs/imager", Reference("ghcr.io", "siderolabs/imager")),
        (f"ghcr.io/siderolabs/imager@{DIGEST}", Reference("ghcr.io", "siderolabs/imager", None, DIGEST)),
        (f"ghcr.io/a/b:v1@{DIGEST}", Reference("ghcr.io", "a/b", "v1", DIGEST)),
        ("127.0.0.1:5000/lab/hello:v1", Reference("127.0.0.1:5000", "lab/hello", "v1")),
        ("localhost/x", Reference("localhost", "x")),
        ("localhost:5000/x:latest", Reference("localhost:5000", "x", "latest")),
        # A Harbor proxy-cache namespace in front of the repository (spec §7.2).
        ("harbor.local/ghcrio/siderolabs/imager:v1", Reference("harbor.local", "ghcrio/siderolabs/imager", "v1")),
        ("[::1]:5000/x", Reference("[::1]:5000", "x")),
        # No dot, colon or `localhost` in the first segment: it is part of the repository.
        ("siderolabs/imager:v1", Reference("docker.io", "siderolabs/imager", "v1")),
        ("alpine", Reference("docker.io", "library/alpine")),
        ("docker.io/alpine:3", Reference("docker.io", "library/alpine", "3")),
        ("a/b__c/d-e.f---g", Reference("docker.io", "a/b__c/d-e.f---g")),
    ],
)  # fmt: skip
def test_parse(text: str, expected: Reference) -> None:
    assert parse_reference(text) == expected


def test_default_registry_is_configurable() -> None:
    assert parse_reference("siderolabs/imager", default_registry="ghcr.io") == Reference("ghcr.io", "siderolabs/imager")


@pytest.mark.parametrize(
    "text",
    [
        "",
        "ghcr.io/",
        "ghcr.io/Upper/case",
        "ghcr.io/a//b",
        "ghcr.io/a/b:",
        "ghcr.io/a/b:-leadingdash",
        "ghcr.io/a/b:" + "t" * 129,
        "ghcr.io/a/b@sha256:short",
        f"ghcr.io/a/b@sha512:{HEX}",
        f"ghcr.io/a/b@sha256:{HEX.upper()}",
        "ghcr.io/a/b_",
        "bad_host.io/a",
        "ghcr.io/" + "a" * 256,
    ],
)
def test_parse_rejects(text: str) -> None:
    with pytest.raises(InvalidArgument):
        parse_reference(text)


@pytest.mark.parametrize(
    "text",
    [
        "ghcr.io/siderolabs/imager:v1.9.0",
        f"ghcr.io/a/b:v1@{DIGEST}",
        f"127.0.0.1:5000/lab/hello@{DIGEST}",
        "docker.io/library/alpine",
    ],
)
def test_str_round_trips(text: str) -> None:
    assert str(parse_reference(text)) == text


def test_ref_and_name() -> None:
    ref = parse_reference("ghcr.io/a/b")
    assert (ref.name, ref.ref) == ("ghcr.io/a/b", "latest")
    assert ref.with_tag("v1").ref == "v1"
    assert ref.with_tag("v1").with_digest(DIGEST).ref == DIGEST
    with pytest.raises(InvalidArgument):
        ref.with_digest("sha256:nope")
    with pytest.raises(InvalidArgument):
        ref.with_tag("no/slash")


@pytest.mark.parametrize(
    ("text", "valid"),
    [
        (DIGEST, True),
        ("sha256:" + "0123456789abcdef" * 4, True),
        ("sha256:" + "a" * 63, False),
        ("sha256:" + "a" * 65, False),
        ("sha256:" + "A" * 64, False),
        ("sha256:" + "g" * 64, False),
        ("sha512:" + "a" * 64, False),
        (HEX, False),
        ("", False),
    ],
)
def test_digest_validation(text: str, valid: bool) -> None:
    assert is_digest(text) is valid
    if valid:
        assert validate_digest(text) == text
    else:
        with pytest.raises(InvalidArgument):
            validate_digest(text)


def test_digest_helpers() -> None:
    empty = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert digest_of(b"") == empty
    assert referrers_tag(empty) == "sha256-e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert signature_tag(empty) == referrers_tag(empty) + ".sig"
    with pytest.raises(InvalidArgument):
        referrers_tag("latest")


@pytest.mark.parametrize(
    ("segment", "is_host"),
    [("ghcr.io", True), ("localhost", True), ("127.0.0.1:5000", True), ("host:80", True), ("siderolabs", False)],
)
def test_registry_host_rule(segment: str, is_host: bool) -> None:
    assert is_registry_host(segment) is is_host


@pytest.mark.parametrize(
    ("host", "insecure", "scheme"),
    [
        ("ghcr.io", False, "https"),
        ("registry.example.com:5000", False, "https"),
        ("ghcr.io", True, "http"),
        ("localhost:5000", False, "http"),
        ("127.0.0.1:5100", False, "http"),
        ("[::1]:5000", False, "http"),
        ("10.1.2.3:5000", False, "http"),
        ("172.20.0.1", False, "http"),
        ("172.32.0.1", False, "https"),
        ("192.168.1.10:443", False, "http"),
        ("8.8.8.8", False, "https"),
    ],
)
def test_registry_scheme_follows_go_containerregistry(host: str, insecure: bool, scheme: str) -> None:
    assert registry_scheme(host, insecure=insecure) == scheme
