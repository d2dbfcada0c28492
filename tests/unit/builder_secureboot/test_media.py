"""Secure Boot extras for ISO and disk ESP (imager spec §5.3, §6.6)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography import x509

from services.builder.assets.iso import SdBootPayload, uefi_tree
from services.builder.enums import EnrollKeys
from services.builder.secureboot import write_enrollment_files
from services.shared.errors import Internal
from services.signer.enrollment import enrollment_databases
from services.signer.keys import KeySet
from tests.unit.builder_secureboot.local_signer import InProcessSigner

MOMENT = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


async def test_files_for_iso_and_esp(sb_keys: KeySet, tmp_path: Path) -> None:
    signer = InProcessSigner(sb_keys, timestamp=MOMENT)
    files = await write_enrollment_files(signer, signer, tmp_path / "keys", include_well_known=False)
    expected = enrollment_databases(sb_keys, timestamp=MOMENT).files()
    assert [rel for rel, _ in files.auth] == ["loader/keys/auto/PK.auth", "loader/keys/auto/KEK.auth",
                                              "loader/keys/auto/db.auth"]  # fmt: skip
    assert {path.name: path.read_bytes() for _, path in files.auth} == expected
    assert x509.load_der_x509_certificate(files.certificate_der.read_bytes()) == sb_keys.secureboot.certificate
    assert files.iso_extra_files() == (("EFI/keys/uki-signing-cert.der", files.certificate_der), *files.auth)
    assert files.esp_extra_files(EnrollKeys.IF_SAFE) == files.auth
    assert files.esp_extra_files(EnrollKeys.OFF) == ()
    # The ISO payload takes them as they are (§5.3 scratch tree).
    payload = SdBootPayload(
        tmp_path / "sd.efi", tmp_path / "uki.efi", "v1.12.0", secure_boot_enroll="if-safe",
        extra_files=files.iso_extra_files(),
    )  # fmt: skip
    tree = uefi_tree(payload)
    assert tree["loader/keys/auto/db.auth"] == files.auth[2][1]
    assert tree["loader/loader.conf"] == b"# systemd-boot configuration\n\ntimeout 10\n\nsecure-boot-enroll if-safe\n"


class _Incomplete(InProcessSigner):
    async def enrollment_files(self, *, include_well_known: bool) -> dict[str, bytes]:
        return {"PK.auth": b"", "db.auth": b""}


async def test_incomplete_answer_is_an_error(sb_keys: KeySet, tmp_path: Path) -> None:
    signer = _Incomplete(sb_keys)
    with pytest.raises(Internal, match="expected"):
        await write_enrollment_files(signer, signer, tmp_path, include_well_known=False)
