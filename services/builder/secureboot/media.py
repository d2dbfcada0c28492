"""Secure Boot extras on boot media: the certificate and the auto-enrollment databases (imager spec §5.3, §6.6).

ISO (§5.3): `EFI/keys/uki-signing-cert.der` and `loader/keys/auto/{PK,KEK,db}.auth`, always.
Disk ESP (§6.6): the `.auth` files unless `sdBootEnrollKeys` is `off` (no certificate file).
The `.auth` files come from the signer (§6.5); the builder only writes them out.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from services.builder.enums import EnrollKeys
from services.builder.secureboot.signer import EnrollmentSigner, Signer
from services.shared.errors import Internal

CERTIFICATE_PATH = "EFI/keys/uki-signing-cert.der"
AUTO_ENROLL_DIR = "loader/keys/auto"
AUTH_FILES = ("PK.auth", "KEK.auth", "db.auth")


@dataclass(frozen=True)
class EnrollmentFiles:
    """Files written under a build-private directory, with their paths on the ESP/ISO."""

    certificate_der: Path
    auth: tuple[tuple[str, Path], ...]  # (`loader/keys/auto/<name>`, file), PK, KEK, db

    def iso_extra_files(self) -> tuple[tuple[str, Path], ...]:
        """`SdBootPayload.extra_files` of a Secure Boot ISO (§5.3)."""
        return ((CERTIFICATE_PATH, self.certificate_der), *self.auth)

    def esp_extra_files(self, enroll: EnrollKeys) -> tuple[tuple[str, Path], ...]:
        """Disk ESP extras (§6.6): the databases unless enrollment is off."""
        return () if enroll is EnrollKeys.OFF else self.auth


async def write_enrollment_files(
    signer: Signer, enrollment: EnrollmentSigner, directory: Path, *, include_well_known: bool
) -> EnrollmentFiles:
    """Ask the signer for the certificate and the signed databases, write them below `directory`."""
    certificate = x509.load_pem_x509_certificate(await signer.certificate())
    files = await enrollment.enrollment_files(include_well_known=include_well_known)
    if sorted(files) != sorted(AUTH_FILES):
        raise Internal(f"signer returned enrollment files {sorted(files)}, expected {list(AUTH_FILES)}")
    contents = {name: files[name] for name in AUTH_FILES}
    der = certificate.public_bytes(serialization.Encoding.DER)
    return await asyncio.to_thread(_write, directory, der, contents)


def _write(directory: Path, der: bytes, contents: dict[str, bytes]) -> EnrollmentFiles:
    directory.mkdir(parents=True, exist_ok=True)
    cert_path = directory / "uki-signing-cert.der"
    cert_path.write_bytes(der)
    auth = []
    for name, data in contents.items():
        path = directory / name
        path.write_bytes(data)
        auth.append((f"{AUTO_ENROLL_DIR}/{name}", path))
    return EnrollmentFiles(cert_path, tuple(auth))
