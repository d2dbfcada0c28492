"""`Signer` over SignerService (SignPE stream, SignPCR, GetSecureBootCertificate).

The only module of the Secure Boot builder code that imports generated code (STYLE "Service layout"); it
belongs with the other adapters in services/builder/adapters/ once the builder wiring uses it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

from imagefactory.v1 import signer_pb2, signer_pb2_grpc
from services.shared.errors import InvalidArgument
from services.shared.streams import read_chunks, write_chunks
from services.signer.pcr import Bank, BankSignature


class GrpcSigner:
    def __init__(self, stub: signer_pb2_grpc.SignerServiceAsyncStub) -> None:
        self._stub = stub

    async def sign_pe(self, path_in: Path, path_out: Path) -> None:
        """Stream `path_in` to SignPE, write the answer to `path_out` (complete or not at all, STYLE §9)."""

        async def parts() -> AsyncIterator[signer_pb2.SignPERequest]:
            first = True
            async for chunk in read_chunks(path_in):
                yield signer_pb2.SignPERequest(name=path_in.name if first else "", data=chunk)
                first = False

        async def signed() -> AsyncIterator[bytes]:
            async for reply in self._stub.SignPE(parts()):
                yield reply.data

        partial = path_out.with_name(path_out.name + ".partial")
        try:
            await write_chunks(partial, signed())
            await asyncio.to_thread(partial.replace, path_out)
        finally:
            await asyncio.to_thread(partial.unlink, missing_ok=True)

    async def sign_pcr(self, values: Mapping[Bank, bytes]) -> tuple[dict[Bank, BankSignature], bytes]:
        request = signer_pb2.SignPCRRequest(
            values=[signer_pb2.PcrValue(bank=bank.value, value_hex=value.hex()) for bank, value in values.items()]
        )
        reply = await self._stub.SignPCR(request)
        entries = {}
        for entry in reply.signatures:
            try:
                bank = Bank(entry.bank)
            except ValueError:
                raise InvalidArgument(f"signer answered for unknown PCR bank {entry.bank!r}") from None
            entries[bank] = BankSignature(pcrs=tuple(entry.pcrs), pkfp=entry.pkfp, pol=entry.pol, sig=entry.sig)
        return entries, reply.public_key_pem.encode()

    async def certificate(self) -> bytes:
        reply = await self._stub.GetSecureBootCertificate(signer_pb2.GetSecureBootCertificateRequest())
        return reply.certificate_pem.encode()

    async def enrollment_files(self, *, include_well_known: bool) -> Mapping[str, bytes]:
        reply = await self._stub.GetEnrollmentDatabases(
            signer_pb2.GetEnrollmentDatabasesRequest(include_well_known_certificates=include_well_known)
        )
        return {"PK.auth": reply.pk_auth, "KEK.auth": reply.kek_auth, "db.auth": reply.db_auth}
