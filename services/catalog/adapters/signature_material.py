"""Fetch the signature material of an upstream image from its registry (spec §7.2).

Bundles come from the referrers API (or its fallback tag); legacy signatures from the
`sha256-<hex>.sig` tag. "None found" is an empty tuple, not an error: the verifier decides.
"""

from __future__ import annotations

from services.catalog.signatures import SignatureMaterial, bundle_layers, legacy_signatures
from services.shared.errors import NotFound
from services.shared.oci import RegistryClient, signature_tag
from services.shared.oci import media_types as mt

MAX_SIGNATURE_BLOB = 1024 * 1024


async def fetch_signature_material(client: RegistryClient, repo: str, digest: str) -> SignatureMaterial:
    bundles: list[bytes] = []
    for descriptor in await client.referrers(repo, digest):
        # Only Sigstore bundles matter; SBOMs and attestations are skipped without fetching them.
        kind = descriptor.artifact_type or ""
        if kind and not kind.startswith("application/vnd.dev.sigstore.bundle"):
            continue
        referrer = await client.get_manifest(repo, descriptor.digest)
        for layer in bundle_layers(referrer, digest):
            bundles.append(await client.get_blob(repo, layer.digest, max_size=MAX_SIGNATURE_BLOB))
    try:
        sig_manifest = await client.get_manifest(repo, signature_tag(digest))
    except NotFound:
        return SignatureMaterial(bundles=tuple(bundles))
    blobs = {
        layer.digest: await client.get_blob(repo, layer.digest, max_size=MAX_SIGNATURE_BLOB)
        for layer in sig_manifest.layers()
        if layer.media_type == mt.COSIGN_SIMPLE_SIGNING
    }
    return SignatureMaterial(bundles=tuple(bundles), legacy=legacy_signatures(sig_manifest, blobs))
