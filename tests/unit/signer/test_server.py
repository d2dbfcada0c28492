"""SignerService over a real in-process gRPC server: every RPC, through the generated stubs."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from grpc import aio

from imagefactory.v1 import signer_pb2, signer_pb2_grpc
from services.signer import pcr
from services.signer.keys import KeySet
from services.signer.pe import verify_pe
from services.signer.server import SignerServicer
from tests.support.grpc_server import serving
from tests.support.real_tools import require_file, require_tools
from tests.unit.signer.test_pe import EFI_CANDIDATES

DIGEST = "sha256:" + "ab" * 32


@pytest.fixture
async def signer(keyset: KeySet, tmp_path: Path) -> AsyncIterator[Any]:
    servicer = SignerServicer(keyset, tmp_path / "work")
    async with serving(
        "signer", lambda server: signer_pb2_grpc.add_SignerServiceServicer_to_server(servicer, server)
    ) as channel:
        yield signer_pb2_grpc.SignerServiceStub(channel)


async def test_cosign_signature_verifies_with_the_served_public_key(signer: Any) -> None:
    public = await signer.GetPublicKey(signer_pb2.GetPublicKeyRequest())
    key = serialization.load_pem_public_key(public.public_key_pem.encode())
    assert isinstance(key, ec.EllipticCurvePublicKey)
    signed = await signer.SignCosign(
        signer_pb2.SignCosignRequest(docker_reference="127.0.0.1:5000/if/cache", manifest_digest=DIGEST)
    )
    assert signed.payload == (
        b'{"critical":{"identity":{"docker-reference":"127.0.0.1:5000/if/cache"},'
        b'"image":{"docker-manifest-digest":"' + DIGEST.encode() + b'"},'
        b'"type":"cosign container image signature"},"optional":null}'
    )
    key.verify(base64.b64decode(signed.signature_base64), signed.payload, ec.ECDSA(hashes.SHA256()))


async def test_verify_cosign_accepts_ours_and_rejects_tampering(signer: Any) -> None:
    signed = await signer.SignCosign(
        signer_pb2.SignCosignRequest(docker_reference="registry.example/a/b", manifest_digest=DIGEST)
    )
    ok = await signer.VerifyCosign(
        signer_pb2.VerifyCosignRequest(
            payload=signed.payload, signature_base64=signed.signature_base64, expected_digest=DIGEST
        )
    )
    assert ok.valid
    other_digest = "sha256:" + "cd" * 32
    wrong_digest = await signer.VerifyCosign(
        signer_pb2.VerifyCosignRequest(
            payload=signed.payload, signature_base64=signed.signature_base64, expected_digest=other_digest
        )
    )
    assert not wrong_digest.valid and wrong_digest.reason
    tampered = await signer.VerifyCosign(
        signer_pb2.VerifyCosignRequest(
            payload=signed.payload.replace(b"a/b", b"a/c"), signature_base64=signed.signature_base64
        )
    )
    assert not tampered.valid


async def test_bad_sign_requests_are_invalid_argument(signer: Any) -> None:
    with pytest.raises(aio.AioRpcError) as info:
        await signer.SignCosign(signer_pb2.SignCosignRequest(docker_reference="x", manifest_digest="sha256:short"))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_sign_pe_streams_a_file_that_sbverify_accepts(signer: Any, keyset: KeySet, tmp_path: Path) -> None:
    require_tools("sbsign", "sbverify")
    source = require_file(*EFI_CANDIDATES).read_bytes()

    async def parts() -> AsyncIterator[signer_pb2.SignPERequest]:
        yield signer_pb2.SignPERequest(name="stub.efi", data=source[:4096])
        for offset in range(4096, len(source), 65536):
            yield signer_pb2.SignPERequest(data=source[offset : offset + 65536])

    signed = b"".join([reply.data async for reply in signer.SignPE(parts())])
    out = tmp_path / "signed.efi"
    out.write_bytes(signed)
    assert len(signed) > len(source)
    assert await verify_pe(out, keyset.secureboot.cert_path)
    cert = await signer.GetSecureBootCertificate(signer_pb2.GetSecureBootCertificateRequest())
    assert cert.certificate_pem.encode() == keyset.secureboot.cert_pem()


async def test_sign_pe_rejects_empty_input(signer: Any) -> None:
    async def nothing() -> AsyncIterator[signer_pb2.SignPERequest]:
        return
        yield

    with pytest.raises(aio.AioRpcError) as info:
        async for _ in signer.SignPE(nothing()):
            pass
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_sign_pcr_signs_each_bank(signer: Any) -> None:
    value = hashlib.sha256(b"pcr11").digest()
    reply = await signer.SignPCR(
        signer_pb2.SignPCRRequest(values=[signer_pb2.PcrValue(bank="sha256", value_hex=value.hex())])
    )
    (entry,) = reply.signatures
    assert (entry.bank, list(entry.pcrs)) == ("sha256", [11])
    pcr.verify_pcr_policy(
        reply.public_key_pem.encode(),
        pcr.Bank.SHA256,
        value,
        pcr.BankSignature(pcrs=tuple(entry.pcrs), pkfp=entry.pkfp, pol=entry.pol, sig=entry.sig),
    )


@pytest.mark.parametrize(("bank", "value_hex"), [("md5", "00" * 16), ("sha256", "zz"), ("sha384", "00" * 32)])
async def test_sign_pcr_rejects_bad_values(signer: Any, bank: str, value_hex: str) -> None:
    with pytest.raises(aio.AioRpcError) as info:
        await signer.SignPCR(signer_pb2.SignPCRRequest(values=[signer_pb2.PcrValue(bank=bank, value_hex=value_hex)]))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
