"""SignerService servicer: proto ↔ domain only."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from imagefactory.v1 import signer_pb2, signer_pb2_grpc
from services.shared.errors import Unimplemented


class SignerServicer(signer_pb2_grpc.SignerServiceServicer):
    async def GetPublicKey(
        self, request: signer_pb2.GetPublicKeyRequest, context: Any
    ) -> signer_pb2.GetPublicKeyResponse:
        raise Unimplemented("signing keys are not configured yet")

    async def SignCosign(self, request: signer_pb2.SignCosignRequest, context: Any) -> signer_pb2.SignCosignResponse:
        raise Unimplemented("cosign signing is not implemented yet")

    async def VerifyCosign(
        self, request: signer_pb2.VerifyCosignRequest, context: Any
    ) -> signer_pb2.VerifyCosignResponse:
        raise Unimplemented("cosign verification is not implemented yet")

    async def SignPE(
        self, request_iterator: AsyncIterator[signer_pb2.SignPERequest], context: Any
    ) -> AsyncIterator[signer_pb2.SignPEResponse]:
        raise Unimplemented("PE signing is not implemented yet")
        yield signer_pb2.SignPEResponse()  # pragma: no cover - makes this an async generator

    async def SignPCR(self, request: signer_pb2.SignPCRRequest, context: Any) -> signer_pb2.SignPCRResponse:
        raise Unimplemented("PCR signing is not implemented yet")

    async def GetSecureBootCertificate(
        self, request: signer_pb2.GetSecureBootCertificateRequest, context: Any
    ) -> signer_pb2.GetSecureBootCertificateResponse:
        raise Unimplemented("Secure Boot is not configured yet")
