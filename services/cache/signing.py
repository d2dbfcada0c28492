"""The cache's view of the signer: sign a metadata digest, verify it back. Only the signer holds keys."""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from typing import Protocol

from prometheus_client import Counter

from services.cache.model import AssetMeta, Signature

log = logging.getLogger(__name__)

VERIFICATION_FAILURES = Counter(
    "image_factory_cache_verification_failures_total",
    "Cached assets refused because their signature, metadata or bytes did not verify",
    ["reason"],
)


class Signer(Protocol):
    async def sign(self, reference: str, digest: str) -> Signature: ...

    async def verify(self, signature: Signature, expected_digest: str) -> str | None:
        """None when valid, otherwise a one-line reason."""
        ...


def refuse(key: str, reason: str, detail: str) -> None:
    """Count and log an asset that must not be served (it then reads as a miss)."""
    VERIFICATION_FAILURES.labels(reason).inc()
    log.warning("cached asset refused", extra={"key": key, "reason": reason, "detail": detail})


async def sign_meta(signer: Signer, reference: str, meta: AssetMeta) -> Signature:
    return await signer.sign(reference, meta.document_digest())


class RememberingVerifier:
    """A Signer whose positive verifications are reused for `ttl` seconds.

    Every read verifies an asset's signature; without this, each one is a round trip to the signer. A
    signature valid for a digest stays valid for it, so only successes are remembered (never failures),
    keyed by the exact payload, signature and digest, and forgotten after `ttl` so that a rotated key
    takes effect without a restart.
    """

    def __init__(self, signer: Signer, *, ttl: float = 60.0, capacity: int = 8192) -> None:
        self._signer = signer
        self._ttl = ttl
        self._capacity = capacity
        self._valid: OrderedDict[tuple[bytes, str, str], float] = OrderedDict()

    async def sign(self, reference: str, digest: str) -> Signature:
        return await self._signer.sign(reference, digest)

    async def verify(self, signature: Signature, expected_digest: str) -> str | None:
        key = (signature.payload, signature.signature_base64, expected_digest)
        checked = self._valid.get(key)
        if checked is not None and time.monotonic() - checked < self._ttl:
            return None
        problem = await self._signer.verify(signature, expected_digest)
        if problem is None:
            self._valid[key] = time.monotonic()
            self._valid.move_to_end(key)
            while len(self._valid) > self._capacity:
                self._valid.popitem(last=False)
        else:
            self._valid.pop(key, None)
        return problem
