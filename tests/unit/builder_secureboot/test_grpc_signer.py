"""`GrpcSigner` against the real SignerServicer on an in-process gRPC server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from grpc import aio

from imagefactory.v1 import signer_pb2_grpc
from services.builder.adapters.secureboot_signer import GrpcSigner
from services.builder.secureboot import pcr_public_key
from services.signer.keys import KeySet
from services.signer.pcr import Bank, verify_pcr_policy
from services.signer.pe import verify_pe
from services.signer.server import SignerServicer
from tests.support.grpc_server import serving
from tests.support.real_tools import require_file, require_tools

SDBOOT = Path("/usr/lib/systemd/boot/efi/systemd-bootx64.efi")


@pytest.fixture
async def signer(sb_keys: KeySet, tmp_path: Path) -> AsyncIterator[GrpcSigner]:
    servicer = SignerServicer(sb_keys, tmp_path / "signer-work")
    async with serving(
        "signer", lambda server: signer_pb2_grpc.add_SignerServiceServicer_to_server(servicer, server)
    ) as channel:
        yield GrpcSigner(signer_pb2_grpc.SignerServiceStub(channel))


async def test_sign_pcr_round_trip(signer: GrpcSigner, sb_keys: KeySet) -> None:
    values = {bank: bank.hash(b"pcr 11") for bank in Bank}
    entries, public_key_pem = await signer.sign_pcr(values)
    assert public_key_pem == sb_keys.pcr.public_key_pem()
    assert set(entries) == set(Bank)
    for bank, value in values.items():
        verify_pcr_policy(public_key_pem, bank, value, entries[bank])
    assert await pcr_public_key(signer) == public_key_pem


async def test_certificate(signer: GrpcSigner, sb_keys: KeySet) -> None:
    assert await signer.certificate() == sb_keys.secureboot.cert_pem()


async def test_sign_pe_streams_both_ways(signer: GrpcSigner, sb_keys: KeySet, tmp_path: Path) -> None:
    require_tools("sbsign", "sbverify")
    source = require_file(SDBOOT)
    out = tmp_path / "systemd-boot.efi.signed"
    await signer.sign_pe(source, out)
    assert await verify_pe(out, sb_keys.secureboot.cert_path)
    assert not (tmp_path / "systemd-boot.efi.signed.partial").exists()


async def test_enrollment_databases_over_grpc(signer: GrpcSigner) -> None:
    files = await signer.enrollment_files(include_well_known=False)
    assert sorted(files) == ["KEK.auth", "PK.auth", "db.auth"]
    assert all(len(data) > 100 for data in files.values())


async def test_well_known_certificates_need_configuring(signer: GrpcSigner) -> None:
    with pytest.raises(aio.AioRpcError) as info:
        await signer.enrollment_files(include_well_known=True)
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
