"""The builder's `Signer`/`EnrollmentSigner` in-process, over the signer's own domain code.

Same code paths as SignerService minus the gRPC hop (sbsign for PE files, `sign_pcr_policy`, the enrollment
databases); the hop itself is covered by `test_grpc_signer.py` against the real servicer.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from pathlib import Path

from services.signer import enrollment, pe
from services.signer.keys import KeySet
from services.signer.pcr import Bank, BankSignature, sign_pcr_policy


class InProcessSigner:
    def __init__(
        self,
        keys: KeySet,
        *,
        well_known: enrollment.WellKnownCertificates | None = None,
        timestamp: datetime | None = None,
    ) -> None:
        self.keys = keys
        self.well_known = well_known
        self.timestamp = timestamp
        self.pcr_requests: list[dict[Bank, bytes]] = []

    async def sign_pe(self, path_in: Path, path_out: Path) -> None:
        await pe.sign_pe(path_in, path_out, self.keys.secureboot.key_path, self.keys.secureboot.cert_path)

    async def sign_pcr(self, values: Mapping[Bank, bytes]) -> tuple[dict[Bank, BankSignature], bytes]:
        self.pcr_requests.append(dict(values))
        entries = {bank: sign_pcr_policy(self.keys.pcr, bank, value) for bank, value in values.items()}
        return entries, self.keys.pcr.public_key_pem()

    async def certificate(self) -> bytes:
        return self.keys.secureboot.cert_pem()

    async def enrollment_files(self, *, include_well_known: bool) -> dict[str, bytes]:
        databases = enrollment.enrollment_databases(
            self.keys, include_well_known=include_well_known, well_known=self.well_known, timestamp=self.timestamp
        )
        return databases.files()
