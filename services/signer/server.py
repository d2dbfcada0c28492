"""SignerService servicer: proto ↔ domain only. The keys never leave `KeySet`."""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from imagefactory.v1 import signer_pb2, signer_pb2_grpc
from services.shared.errors import InvalidArgument, PayloadTooLarge, VerificationFailed
from services.shared.streams import read_chunks, write_chunks
from services.signer import cosign, enrollment, pcr, pe
from services.signer.keys import KeySet

# A UKI with a large initramfs is a few hundred MiB; anything far beyond is not a boot binary.
MAX_PE_BYTES = 2 * 1024 * 1024 * 1024


class SignerServicer(signer_pb2_grpc.SignerServiceServicer):
    def __init__(
        self, keys: KeySet, work_dir: Path, well_known: enrollment.WellKnownCertificates | None = None
    ) -> None:
        self._keys = keys
        self._work_dir = work_dir
        self._well_known = well_known

    async def GetPublicKey(
        self, request: signer_pb2.GetPublicKeyRequest, context: Any
    ) -> signer_pb2.GetPublicKeyResponse:
        return signer_pb2.GetPublicKeyResponse(public_key_pem=self._keys.cosign.public_key_pem().decode())

    async def SignCosign(self, request: signer_pb2.SignCosignRequest, context: Any) -> signer_pb2.SignCosignResponse:
        payload, signature = cosign.sign_cosign(self._keys.cosign, request.docker_reference, request.manifest_digest)
        return signer_pb2.SignCosignResponse(payload=payload, signature_base64=signature)

    async def VerifyCosign(
        self, request: signer_pb2.VerifyCosignRequest, context: Any
    ) -> signer_pb2.VerifyCosignResponse:
        try:
            cosign.verify_cosign(
                self._keys.cosign.public_key_pem(),
                request.payload,
                request.signature_base64,
                expected_digest=request.expected_digest or None,
            )
        except VerificationFailed as exc:
            return signer_pb2.VerifyCosignResponse(valid=False, reason=exc.message)
        return signer_pb2.VerifyCosignResponse(valid=True)

    async def SignPE(
        self, request_iterator: AsyncIterator[signer_pb2.SignPERequest], context: Any
    ) -> AsyncIterator[signer_pb2.SignPEResponse]:
        async def chunks() -> AsyncIterator[bytes]:
            async for part in request_iterator:
                yield part.data

        self._work_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=self._work_dir, prefix="sign-pe-") as tmp:
            unsigned, signed = Path(tmp) / "in.efi", Path(tmp) / "out.efi"
            try:
                size = await write_chunks(unsigned, chunks(), limit=MAX_PE_BYTES)
            except ValueError:
                raise PayloadTooLarge(f"PE file exceeds {MAX_PE_BYTES} bytes") from None
            if size == 0:
                raise InvalidArgument("no PE file was sent")
            secureboot = self._keys.secureboot
            await pe.sign_pe(unsigned, signed, secureboot.key_path, secureboot.cert_path)
            async for chunk in read_chunks(signed):
                yield signer_pb2.SignPEResponse(data=chunk)

    async def SignPCR(self, request: signer_pb2.SignPCRRequest, context: Any) -> signer_pb2.SignPCRResponse:
        signatures = []
        for value in request.values:
            try:
                bank = pcr.Bank(value.bank)
                digest = bytes.fromhex(value.value_hex)
            except ValueError:
                raise InvalidArgument(f"invalid PCR value for bank {value.bank!r}") from None
            if len(digest) != bank.digest_size:
                raise InvalidArgument(f"PCR value for {bank.value} must be {bank.digest_size} bytes")
            entry = pcr.sign_pcr_policy(self._keys.pcr, bank, digest)
            signatures.append(
                signer_pb2.PcrBankSignature(
                    bank=bank.value, pcrs=list(entry.pcrs), pkfp=entry.pkfp, pol=entry.pol, sig=entry.sig
                )
            )
        return signer_pb2.SignPCRResponse(
            signatures=signatures, public_key_pem=self._keys.pcr.public_key_pem().decode()
        )

    async def GetEnrollmentDatabases(
        self, request: signer_pb2.GetEnrollmentDatabasesRequest, context: Any
    ) -> signer_pb2.GetEnrollmentDatabasesResponse:
        when = datetime.fromtimestamp(request.timestamp_unix, UTC) if request.timestamp_unix else None
        databases = enrollment.enrollment_databases(
            self._keys,
            include_well_known=request.include_well_known_certificates,
            well_known=self._well_known,
            timestamp=when,
        )
        return signer_pb2.GetEnrollmentDatabasesResponse(
            pk_auth=databases.pk, kek_auth=databases.kek, db_auth=databases.db
        )

    async def GetSecureBootCertificate(
        self, request: signer_pb2.GetSecureBootCertificateRequest, context: Any
    ) -> signer_pb2.GetSecureBootCertificateResponse:
        return signer_pb2.GetSecureBootCertificateResponse(certificate_pem=self._keys.secureboot.cert_pem().decode())
