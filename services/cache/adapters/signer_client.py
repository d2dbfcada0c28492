"""The Signer protocol over gRPC (SignerService.SignCosign / VerifyCosign)."""

from __future__ import annotations

from imagefactory.v1 import signer_pb2, signer_pb2_grpc
from services.cache.model import Signature


class GrpcSigner:
    def __init__(self, stub: signer_pb2_grpc.SignerServiceAsyncStub) -> None:
        self._stub = stub

    async def sign(self, reference: str, digest: str) -> Signature:
        reply = await self._stub.SignCosign(
            signer_pb2.SignCosignRequest(docker_reference=reference, manifest_digest=digest)
        )
        return Signature(payload=reply.payload, signature_base64=reply.signature_base64)

    async def verify(self, signature: Signature, expected_digest: str) -> str | None:
        reply = await self._stub.VerifyCosign(
            signer_pb2.VerifyCosignRequest(
                payload=signature.payload,
                signature_base64=signature.signature_base64,
                expected_digest=expected_digest,
            )
        )
        return None if reply.valid else (reply.reason or "signature did not verify")
