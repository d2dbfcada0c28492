"""`/v2/*` route parsing and image names: the reference's vectors (spec §2.13)."""

from __future__ import annotations

import pytest

from gateway.registry_routes import (
    InstallerImage,
    Ping,
    ProxyRoute,
    SchematicRoute,
    parse_v2_path,
    requested_image,
)
from services.shared.errors import InvalidArgument, NotFound


@pytest.mark.parametrize(
    ("path", "route"),
    [
        ("", Ping()),
        ("/", Ping()),
        ("/metal-installer/abc/manifests/v1.7.0", SchematicRoute("metal-installer", "abc", "manifests", "v1.7.0")),
        ("/installer/abc123/blobs/sha256:deadbeef", SchematicRoute("installer", "abc123", "blobs", "sha256:deadbeef")),
        (
            "/installer/abc123/referrers/sha256:deadbeef",
            SchematicRoute("installer", "abc123", "referrers", "sha256:deadbeef"),
        ),
        ("/siderolabs/talosctl/manifests/v1", ProxyRoute("talosctl", "manifests", "v1")),
        ("/siderolabs/talosctl/v.13.5/manifests/latest", ProxyRoute("talosctl/v.13.5", "manifests", "latest")),
        ("/siderolabs/talosctl/tags/list", ProxyRoute("talosctl", "tags", "list")),
        ("/siderolabs/installer/referrers/sha256:deadbeef", ProxyRoute("installer", "referrers", "sha256:deadbeef")),
    ],
)
def test_valid_paths(path: str, route: object) -> None:
    assert parse_v2_path(path) == route


@pytest.mark.parametrize(
    "path",
    [
        "/foo",
        "/foo/bar",
        "/foo/manifests/v1",
        "/a/b/c/manifests/v1",
        "/image/schematic/tags/v1",
        "/image/schematic/tags/list",
        "/siderolabs/manifests/v1",
        "/siderolabs/talosctl/tags/v1",
        "/siderolabs/talosctl/tags/foo",
        "/installer/abc/manifests/",
    ],
)
def test_invalid_paths(path: str) -> None:
    with pytest.raises(NotFound) as info:
        parse_v2_path(path)
    assert info.value.message == f'unknown registry path: "{path}"'


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        ("installer", InstallerImage("metal", False)),
        ("installer-secureboot", InstallerImage("metal", True)),
        ("metal-installer", InstallerImage("metal", False)),
        ("aws-installer-secureboot", InstallerImage("aws", True)),
        ("nocloud-installer", InstallerImage("nocloud", False)),
    ],
)
def test_installer_image_names(image: str, expected: InstallerImage) -> None:
    assert requested_image(image) == expected


@pytest.mark.parametrize("image", ["talos", "-installer", "installerx", "foo-installer-x"])
def test_invalid_image_names(image: str) -> None:
    with pytest.raises(InvalidArgument, match=f"^invalid image: {image}$"):
        requested_image(image)
