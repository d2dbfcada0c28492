"""Secure Boot asset keys follow the signer's keys: a rotated key means new assets, not old ones."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from services.builder.planning import SigningIdentity


class KeySigner:
    def __init__(self, certificate: bytes, pcr_key: bytes) -> None:
        self.certificate_pem = certificate
        self.pcr_key = pcr_key
        self.asked = 0

    async def sign_pe(self, path_in: Path, path_out: Path) -> None:
        raise AssertionError("not used")

    async def sign_pcr(self, values: Mapping[Any, bytes]) -> tuple[Mapping[Any, Any], bytes]:
        assert not values
        return {}, self.pcr_key

    async def certificate(self) -> bytes:
        self.asked += 1
        return self.certificate_pem

    async def enrollment_files(self, *, include_well_known: bool) -> Mapping[str, bytes]:
        raise AssertionError("not used")


async def test_each_key_changes_the_digests() -> None:
    base = await SigningIdentity(KeySigner(b"cert-1", b"pcr-1")).digests()
    assert set(base) == {"signer/secureboot-certificate", "signer/pcr-public-key"}
    assert all(value.startswith("sha256:") for value in base.values())
    assert await SigningIdentity(KeySigner(b"cert-2", b"pcr-1")).digests() != base
    other_pcr = await SigningIdentity(KeySigner(b"cert-1", b"pcr-2")).digests()
    assert other_pcr["signer/secureboot-certificate"] == base["signer/secureboot-certificate"]
    assert other_pcr["signer/pcr-public-key"] != base["signer/pcr-public-key"]


async def test_the_signer_is_asked_once_a_minute(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [100.0]
    monkeypatch.setattr("services.builder.planning.time.monotonic", lambda: now[0])
    signer = KeySigner(b"cert-1", b"pcr-1")
    identity = SigningIdentity(signer)
    first = await identity.digests()
    now[0] += 59
    assert await identity.digests() == first
    assert signer.asked == 1
    signer.certificate_pem = b"rotated"
    now[0] += 2
    assert await identity.digests() != first
    assert signer.asked == 2
