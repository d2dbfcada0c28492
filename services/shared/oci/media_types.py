"""Media types the factory reads and writes (spec §6.5, §7.2, §8.2, §9.3, §9.4)."""

from __future__ import annotations

from typing import Final

# OCI image spec v1.1.
OCI_MANIFEST: Final = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX: Final = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG: Final = "application/vnd.oci.image.config.v1+json"
OCI_LAYER: Final = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP: Final = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD: Final = "application/vnd.oci.image.layer.v1.tar+zstd"
# Config of artifacts that carry no config (the sigstore bundle referrer, §7.2); its blob is `{}`.
OCI_EMPTY: Final = "application/vnd.oci.empty.v1+json"

# Docker image manifest v2 schema 2: what go-containerregistry's empty.Image and tarball.Image write
# (schematics §6.5, asset cache §8.2, per-arch installer manifests §9.2).
DOCKER_MANIFEST: Final = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST: Final = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG: Final = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_GZIP: Final = "application/vnd.docker.image.rootfs.diff.tar.gzip"

# Signatures (§9.4 legacy cosign `.sig` tag, §7.2 bundle referrers).
COSIGN_SIMPLE_SIGNING: Final = "application/vnd.dev.cosign.simplesigning.v1+json"
SIGSTORE_BUNDLE_V03: Final = "application/vnd.dev.sigstore.bundle.v0.3+json"

# Factory payloads: a schematic's canonical YAML (§6.5) and a cached asset's raw bytes (§8.2).
SIDERO_SCHEMATIC: Final = "application/vnd.sidero.dev-image.schematic"
APPLICATION_DATA: Final = "application/data"

IMAGE_MANIFESTS: Final = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
INDEXES: Final = frozenset({OCI_INDEX, DOCKER_MANIFEST_LIST})

# Sent as `Accept` when fetching a manifest whose kind we don't know yet. Without it, registries
# fall back to (or refuse with) Docker schema 1, which we never handle.
ANY_MANIFEST: Final = (OCI_INDEX, OCI_MANIFEST, DOCKER_MANIFEST_LIST, DOCKER_MANIFEST)


def is_index(media_type: str) -> bool:
    return media_type in INDEXES


def is_image_manifest(media_type: str) -> bool:
    return media_type in IMAGE_MANIFESTS
