"""The demo upstream release published into the session's registry, for every test that needs one.

The cache directory is shared with the CLI (`IMAGE_FACTORY_DEMO_CACHE`, else ~/.cache/image-factory-demo),
so only the first run downloads the Debian packages and compresses the layers.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest

from devtools.demo_release import DemoRelease, publish
from devtools.demo_release.cache import DEFAULT_CACHE_DIR, CacheDir
from devtools.demo_release.signing import load_cosign_key
from services.shared.oci import RegistryClient
from services.signer.keys import CosignKey
from tests.support.real_tools import require_tools
from tests.support.registry import RegistryServer


@pytest.fixture(scope="session")
def demo_cache() -> CacheDir:
    return CacheDir(Path(os.environ.get("IMAGE_FACTORY_DEMO_CACHE") or DEFAULT_CACHE_DIR))


@pytest.fixture(scope="session")
def demo_key(tmp_path_factory: pytest.TempPathFactory) -> CosignKey:
    return load_cosign_key(tmp_path_factory.mktemp("demo-key") / "cosign.pem", generate=True)


async def publish_demo(host: str, key: CosignKey, cache: CacheDir) -> tuple[DemoRelease, float]:
    start = time.monotonic()
    async with RegistryClient(host, insecure=True) as client:
        release = await publish(client, key, cache.root)
    return release, time.monotonic() - start


@pytest.fixture(scope="session")
def demo_release(registry: RegistryServer, demo_key: CosignKey, demo_cache: CacheDir) -> DemoRelease:
    require_tools("apt-get", "dpkg-deb", "depmod", "mksquashfs", "zstd")
    # A fresh loop of its own: the tests' loops are per function.
    release, _ = asyncio.run(publish_demo(registry.host, demo_key, demo_cache))
    return release


def demo_key_pub(key: CosignKey) -> Path:
    """The public key file beside the demo key (what `artifacts.signature.public_key_file` names)."""
    return key.path.with_name(key.path.name + ".pub")
