"""`python -m devtools.demo_release publish --registry HOST:PORT [--insecure] --key KEY.pem [--cache-dir DIR]`

Prints a JSON summary (versions, kernel, `repository:tag` -> digest, extension catalog lines) on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import time
from pathlib import Path

from services.shared.oci import RegistryClient

from .cache import DEFAULT_CACHE_DIR
from .model import DemoRelease
from .publish import publish
from .signing import load_cosign_key


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m devtools.demo_release", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    cmd = sub.add_parser("publish", help="build and push the demo release, signed")
    cmd.add_argument("--registry", required=True, help="registry host[:port], e.g. 127.0.0.1:5000")
    cmd.add_argument("--insecure", action="store_true", help="plain HTTP (loopback test registries)")
    cmd.add_argument("--key", required=True, type=Path, help="cosign ECDSA P-256 private key (PEM)")
    cmd.add_argument("--generate-key", action="store_true", help="create --key (and KEY.pub) if it is missing")
    cmd.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE_DIR, help=f"default {DEFAULT_CACHE_DIR}")
    cmd.add_argument("-v", "--verbose", action="store_true")
    return parser


def summary(release: DemoRelease) -> dict[str, object]:
    return {
        "registry": release.registry,
        "namespace": release.namespace,
        "versions": list(release.versions),
        "kernel_version": release.kernel_version,
        "images": release.digests(),
        "extensions": {v: [e.catalog_line for e in exts] for v, exts in release.extensions.items()},
    }


async def _publish(args: argparse.Namespace) -> DemoRelease:
    key = load_cosign_key(args.key, generate=args.generate_key)
    async with RegistryClient(args.registry, insecure=args.insecure) as client:
        return await publish(client, key, args.cache_dir)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(message)s", stream=sys.stderr)
    start = time.monotonic()
    release = asyncio.run(_publish(args))
    json.dump(summary(release), sys.stdout, indent=2)
    sys.stdout.write("\n")
    logging.info("published %d images in %.1f s", len(release.images), time.monotonic() - start)
    return 0


if __name__ == "__main__":
    sys.exit(main())
