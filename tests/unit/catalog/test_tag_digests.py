"""Release tags are resolved to digests at most once per `tag_recheck_seconds`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from services.catalog.upstream import Upstream
from services.shared.config import ArtifactsConfig
from services.shared.errors import NotFound
from services.shared.oci import Descriptor

DIGEST_1 = "sha256:" + "1" * 64
DIGEST_2 = "sha256:" + "2" * 64


class TagRegistry:
    def __init__(self) -> None:
        self.tags: dict[str, str] = {"v1.12.1": DIGEST_1}
        self.heads = 0

    async def head_manifest(self, repo: str, ref: str) -> Descriptor | None:
        self.heads += 1
        digest = self.tags.get(ref)
        return None if digest is None else Descriptor("application/vnd.oci.image.index.v1+json", digest, 100)


def upstream(client: Any, tmp_path: Path, recheck: float) -> Upstream:
    return Upstream(client, ArtifactsConfig(tag_recheck_seconds=recheck), verifier=None, work_dir=tmp_path)  # type: ignore[arg-type]


async def test_a_tag_is_asked_again_only_after_the_recheck_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [500.0]
    monkeypatch.setattr("services.catalog.upstream.time.monotonic", lambda: now[0])
    registry = TagRegistry()
    source = upstream(registry, tmp_path, recheck=60)
    assert await source._tag_digest("siderolabs/imager", "v1.12.1") == DIGEST_1
    registry.tags["v1.12.1"] = DIGEST_2  # re-pushed upstream
    now[0] += 30
    assert await source._tag_digest("siderolabs/imager", "v1.12.1") == DIGEST_1
    assert registry.heads == 1
    now[0] += 31
    assert await source._tag_digest("siderolabs/imager", "v1.12.1") == DIGEST_2
    assert registry.heads == 2


async def test_missing_tags_are_not_remembered(tmp_path: Path) -> None:
    registry = TagRegistry()
    source = upstream(registry, tmp_path, recheck=60)
    for _ in range(2):
        with pytest.raises(NotFound):
            await source._tag_digest("siderolabs/imager", "v9.9.9")
    assert registry.heads == 2
