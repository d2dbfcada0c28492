"""Load the cosign key the release is signed with, or create one for a first run."""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from services.signer.keys import CosignKey


def load_cosign_key(path: Path, *, generate: bool = False) -> CosignKey:
    """An unencrypted ECDSA P-256 PEM key (factory spec §9.4). With `generate`, a missing file is
    created (0600) with the public key beside it as `<path>.pub`, for the factory's
    `containerSignature.publicKeyFile`."""
    if generate and not path.exists():
        key = ec.generate_private_key(ec.SECP256R1())
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(pem)
        cosign = CosignKey(key, path)
        path.with_name(path.name + ".pub").write_bytes(cosign.public_key_pem())
        return cosign
    loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not (isinstance(loaded, ec.EllipticCurvePrivateKey) and isinstance(loaded.curve, ec.SECP256R1)):
        raise ValueError(f"{path}: the cosign key must be an ECDSA P-256 private key")
    return CosignKey(loaded, path)
