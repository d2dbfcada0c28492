"""What the builder needs from the signer service (imager spec §6.3-§6.5), as small Protocols.

The builder never holds a private key: it predicts PCR values and assembles files, the signer signs.
Implementations: `GrpcSigner` (services/builder/adapters/secureboot_signer.py) over SignerService, and an
in-process fake over the signer's domain code in the tests.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

from services.signer.pcr import Bank, BankSignature


class Signer(Protocol):
    async def sign_pe(self, path_in: Path, path_out: Path) -> None:
        """Authenticode-sign `path_in` into `path_out` with the Secure Boot key (§6.4)."""

    async def sign_pcr(self, values: Mapping[Bank, bytes]) -> tuple[Mapping[Bank, BankSignature], bytes]:
        """Sign the PCR 11 policy of each predicted bank value (§6.3); returns the entries and the PEM
        public key of the PCR signing key (the `.pcrpkey` section). No values: just the public key."""

    async def certificate(self) -> bytes:
        """The Secure Boot signing certificate, PEM (factory spec §2.9)."""


class EnrollmentSigner(Protocol):
    async def enrollment_files(self, *, include_well_known: bool) -> Mapping[str, bytes]:
        """`{"PK.auth": …, "KEK.auth": …, "db.auth": …}` signed by the Secure Boot key (§6.5)."""


class SecureBootSigner(Signer, EnrollmentSigner, Protocol):
    """Everything the builder asks of the signer service for Secure Boot assets."""
