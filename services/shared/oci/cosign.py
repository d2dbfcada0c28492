"""The cosign `sha256-<hex>.sig` manifest layout (factory spec §9.4), shared by everything that signs.

One OCI manifest whose single layer is the simple-signing payload, with the base64 signature in the
`dev.cosignproject.cosign/signature` annotation. The caller pushes `config` and the payload as blobs.
"""

from __future__ import annotations

import json
from typing import Final

from services.shared.oci import media_types as mt
from services.shared.oci.reference import digest_of

SIGNATURE_ANNOTATION: Final = "dev.cosignproject.cosign/signature"


def signature_manifest(config: bytes, payload: bytes, signature_b64: str) -> bytes:
    """Compact JSON in a fixed key order: the same inputs always give the same manifest digest."""
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": mt.OCI_MANIFEST,
            "config": {"mediaType": mt.OCI_CONFIG, "digest": digest_of(config), "size": len(config)},
            "layers": [
                {
                    "mediaType": mt.COSIGN_SIMPLE_SIGNING,
                    "digest": digest_of(payload),
                    "size": len(payload),
                    "annotations": {SIGNATURE_ANNOTATION: signature_b64},
                }
            ],
        },
        separators=(",", ":"),
    ).encode()
