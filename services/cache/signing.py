"""The cache's view of the signer: sign a metadata digest, verify it back. Only the signer holds keys."""

from __future__ import annotations

import logging
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
