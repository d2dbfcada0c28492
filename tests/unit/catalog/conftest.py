"""Catalog test fixtures: the real upstream OCI layouts from `shared/fixtures/upstream-real/`, a small
reader for OCI image layouts, and a guard that fails any network access."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from services.catalog.signatures import bundle_layers
from services.shared.oci import media_types
from services.shared.oci.manifest import Descriptor, Manifest
from services.shared.oci.reference import digest_of

# The `shared/` folder beside the checkout (shared/README.md).
SHARED = Path(__file__).resolve().parents[3].parent / "shared"
UPSTREAM_REAL = SHARED / "fixtures" / "upstream-real"


class OciLayout:
    """Read-only view of an OCI image layout directory (`index.json` + `blobs/sha256/`)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def blob(self, digest: str) -> bytes:
        data = (self.root / "blobs" / "sha256" / digest.removeprefix("sha256:")).read_bytes()
        assert digest_of(data) == digest
        return data

    def index(self) -> Manifest:
        return Manifest.from_bytes((self.root / "index.json").read_bytes(), media_types.OCI_INDEX)

    def manifest(self, descriptor: Descriptor) -> Manifest:
        return Manifest(self.blob(descriptor.digest), descriptor.media_type, descriptor.digest)

    def top(self) -> Descriptor:
        (only,) = self.index().manifests()
        return only


@pytest.fixture(scope="session")
def upstream_real() -> Path:
    if not (UPSTREAM_REAL / "extensions-catalog-signature" / "index.json").is_file():
        message = f"real upstream OCI fixtures not found at {UPSTREAM_REAL} (see shared/README.md)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return UPSTREAM_REAL


@pytest.fixture(scope="session")
def catalog_image(upstream_real: Path) -> OciLayout:
    return OciLayout(upstream_real / "extensions-catalog-image")


@pytest.fixture(scope="session")
def catalog_signature(upstream_real: Path) -> OciLayout:
    return OciLayout(upstream_real / "extensions-catalog-signature")


@pytest.fixture(scope="session")
def catalog_digest(catalog_image: OciLayout) -> str:
    return catalog_image.top().digest


@pytest.fixture(scope="session")
def real_bundle(catalog_signature: OciLayout, catalog_digest: str) -> bytes:
    """The keyless Sigstore bundle of the real catalog image, found the way the catalog finds it:
    referrers index → referrer manifest → bundle layer."""
    referrers = catalog_signature.manifest(catalog_signature.top())
    (referrer,) = referrers.manifests()
    assert referrer.artifact_type == media_types.SIGSTORE_BUNDLE_V03
    (layer,) = bundle_layers(catalog_signature.manifest(referrer), catalog_digest)
    return catalog_signature.blob(layer.digest)


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No sockets, and TUF/platformdirs homes pointed at an empty dir the test can inspect."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"network access attempted: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    home = tmp_path / "home"
    home.mkdir()
    for var in ("HOME", "XDG_CACHE_HOME", "XDG_DATA_HOME", "TUF_ROOT"):
        monkeypatch.setenv(var, str(home))
    return home
