"""`make demo`: the whole mesh offline, against the demo Talos-like release in a local registry.

1. start Debian's distribution registry on loopback (storage kept under `<demo dir>/registry`);
2. publish the demo release into it, signed with a demo cosign key (cached: seconds after the first run);
3. start the mesh with the catalog pointed at that registry and trusting only the demo key;
4. print the URL and a few commands to try; Ctrl-C stops everything.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path
from typing import Any

from devtools.demo_release import publish
from devtools.demo_release.cache import DEFAULT_CACHE_DIR
from devtools.demo_release.signing import load_cosign_key
from devtools.local_registry import RegistryError, start_registry
from services.mesh.supervisor import Mesh, MeshError, supervise
from services.shared.config import ConfigError, config_to_env, load_config
from services.shared.logs import setup_logging
from services.shared.oci import RegistryClient

DEFAULT_DIR = Path("var/demo")
DEFAULT_REGISTRY_PORT = 5100


def demo_overrides(demo_dir: Path, registry: str, public_key: Path) -> dict[str, Any]:
    return {
        "state_dir": str(demo_dir / "state"),
        "artifacts": {
            "registry": registry,
            "insecure": True,
            "signature": {"public_key_file": str(public_key), "subject_regexp": ""},
        },
    }


async def publish_release(registry: str, key_path: Path, cache_dir: Path) -> list[str]:
    key = load_cosign_key(key_path, generate=True)
    async with RegistryClient(registry, insecure=True) as client:
        release = await publish(client, key, cache_dir)
    return list(release.versions)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the Image Factory offline against a demo Talos release")
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR, help="where the demo keeps its state")
    parser.add_argument(
        "--registry-port", type=int, default=int(os.environ.get("DEMO_REGISTRY_PORT", DEFAULT_REGISTRY_PORT))
    )
    parser.add_argument(
        "--cache-dir", type=Path, default=Path(os.environ.get("IMAGE_FACTORY_DEMO_CACHE") or DEFAULT_CACHE_DIR)
    )
    args = parser.parse_args(argv)
    demo_dir: Path = args.dir
    demo_dir.mkdir(parents=True, exist_ok=True)
    setup_logging("demo", "info", "text")

    try:
        registry = start_registry(demo_dir / "registry", port=args.registry_port)
    except RegistryError as exc:
        print(f"demo: {exc}", file=sys.stderr)
        return 1
    mesh: Mesh | None = None
    try:
        key_path = demo_dir / "upstream-cosign.pem"
        print(f"Publishing the demo release into {registry.host} …", flush=True)
        versions = asyncio.run(publish_release(registry.host, key_path, args.cache_dir))
        overrides = demo_overrides(demo_dir, registry.host, key_path.with_name(key_path.name + ".pub"))
        environ = {**os.environ, **config_to_env(overrides)}
        config = load_config(None, environ)
        mesh = Mesh(config=config, overrides=overrides, log_dir=demo_dir / "logs")
        mesh.start(timeout=60)
        print(
            f"Image Factory demo is ready at {mesh.url}/ with Talos {', '.join(versions)}.\n"
            f"  curl {mesh.url}/versions\n"
            f"  curl {mesh.url}/version/v1.12.1/extensions/official\n"
            f"  curl -X POST --data-binary 'customization: {{}}' {mesh.url}/schematics\n"
            f"Logs in {demo_dir / 'logs'}; Ctrl-C stops it.",
            flush=True,
        )
        return asyncio.run(supervise(mesh))
    except (MeshError, ConfigError) as exc:
        print(f"demo: {exc}", file=sys.stderr)
        return 1
    finally:
        if mesh is not None:
            mesh.stop()
        registry.stop()


if __name__ == "__main__":
    sys.exit(main())
