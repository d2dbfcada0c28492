"""`imagefactory`: the command line of the SDK.

Exit codes: 0 success, 1 the factory (or the network, or a verification) said no — one line on stderr —,
2 usage errors (argparse's own convention), 130 interrupted (a download keeps its `.part` for a resume).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import NoReturn

from imagefactory_client.bundle import ExportRequest, export_bundle, verify_bundle
from imagefactory_client.client import URL_ENV, AsyncClient, default_url
from imagefactory_client.errors import ImageFactoryError
from imagefactory_client.progress import ProgressBar
from imagefactory_client.transfer import Options

PROG = "imagefactory"
Command = Callable[[AsyncClient, argparse.Namespace], Awaitable[int]]


def out(text: str) -> None:
    sys.stdout.write(text if text.endswith("\n") else text + "\n")


def rate(value: str) -> float:
    """`500k`, `2M`, `1048576` → bytes per second (curl's --limit-rate suffixes)."""
    units = {"k": 1024, "m": 1024**2, "g": 1024**3}
    try:
        number = float(value[:-1]) * units[value[-1].lower()] if value[-1:].lower() in units else float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid rate {value!r}: expected bytes/s such as 500k or 2M") from None
    if number <= 0:
        raise argparse.ArgumentTypeError("the rate must be positive")
    return number


def transfer_options(args: argparse.Namespace, label: str) -> tuple[Options, ProgressBar | None]:
    bar = None if args.quiet else ProgressBar(label)
    return Options(retries=args.retries, rate_limit=args.limit_rate, progress=bar), bar


async def cmd_schematic_create(client: AsyncClient, args: argparse.Namespace) -> int:
    out(await client.create_schematic(args.body))
    return 0


async def cmd_schematic_get(client: AsyncClient, args: argparse.Namespace) -> int:
    sys.stdout.write(await client.get_schematic(args.id))
    return 0


async def cmd_versions(client: AsyncClient, args: argparse.Namespace) -> int:
    for version in await client.versions(broken=args.broken):
        out(version)
    return 0


async def cmd_extensions(client: AsyncClient, args: argparse.Namespace) -> int:
    extensions = await client.extensions(args.version)
    if args.json:
        out(json.dumps([e.__dict__ for e in extensions], indent=2))
    for ext in [] if args.json else extensions:
        out(f"{ext.name}\t{ext.ref}@{ext.digest}" + (f"\t{ext.description}" if ext.description else ""))
    return 0


async def cmd_overlays(client: AsyncClient, args: argparse.Namespace) -> int:
    for overlay in await client.overlays(args.version):
        out(f"{overlay.name}\t{overlay.ref}@{overlay.digest}")
    return 0


async def cmd_talosctl(client: AsyncClient, args: argparse.Namespace) -> int:
    if args.file is None:
        for url in await client.talosctl(args.version):
            out(url)
        return 0
    dest = Path(args.output or args.file)
    options, bar = transfer_options(args, args.file)
    try:
        await client.download_talosctl(args.version, args.file, dest, options)
    finally:
        if bar:
            bar.close()
    return 0


async def cmd_download(client: AsyncClient, args: argparse.Namespace) -> int:
    dest = Path(args.output or args.path)
    options, bar = transfer_options(args, args.path)
    try:
        result = await client.download(args.id, args.version, args.path, dest, options)
    finally:
        if bar:
            bar.close()
    out(f"{result.sha256}  {result.path}")
    return 0


async def cmd_pxe(client: AsyncClient, args: argparse.Namespace) -> int:
    sys.stdout.write(await client.pxe_script(args.id, args.version, args.target))
    return 0


async def cmd_export(client: AsyncClient, args: argparse.Namespace) -> int:
    bars: list[ProgressBar] = []

    def options_for(label: str) -> Options:
        options, bar = transfer_options(args, label)
        if bar:
            bars.append(bar)
        return options

    request = ExportRequest(args.schematic, args.version, args.asset, args.cache_dir)
    try:
        manifest = await export_bundle(client, Path(args.directory), request, options_for=options_for)
    except ValueError as exc:
        usage_error(f"export: {exc}")
    finally:
        for bar in bars:
            bar.close()
    signed = sum(1 for f in manifest.files if f.signature)
    assets = sum(1 for f in manifest.files if f.path.startswith("image/"))
    out(f"{args.directory}: {len(manifest.files)} files, {assets} assets, {signed} signed")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    key = read_input(args.key) if args.key else None
    report = verify_bundle(Path(args.directory), public_key=key, require_signatures=args.require_signatures)
    for problem in report.problems:
        sys.stderr.write(f"{PROG}: {problem}\n")
    for path in [] if args.require_signatures else report.unsigned:
        sys.stderr.write(f"{PROG}: warning: {path}: no signature in the bundle (digest checked only)\n")
    if not report.ok:
        return 1
    out(f"{args.directory}: {report.files} files verified, {report.signed} signed by the factory key")
    return 0


class UsageError(Exception):
    """A command line that names something unusable (exit 2, like argparse's own errors)."""


def usage_error(message: str) -> NoReturn:
    raise UsageError(message)


def read_input(name: str) -> bytes:
    """A file named on the command line, `-` for stdin; unreadable → usage error (exit 2)."""
    try:
        return sys.stdin.buffer.read() if name == "-" else Path(name).read_bytes()
    except OSError as exc:
        usage_error(f"{name}: {exc.strerror or exc}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="Client of a Talos Linux Image Factory.")
    parser.add_argument("--url", default=None, help=f"factory base URL (${URL_ENV}, default {default_url()})")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    schematic = commands.add_parser("schematic", help="create or read schematics")
    schematic_commands = schematic.add_subparsers(dest="schematic_command", required=True, metavar="ACTION")
    create = schematic_commands.add_parser("create", help="store a schematic (YAML file, - for stdin); prints its ID")
    create.add_argument("file")
    create.set_defaults(run=cmd_schematic_create)
    get = schematic_commands.add_parser("get", help="print a schematic's canonical YAML")
    get.add_argument("id")
    get.set_defaults(run=cmd_schematic_get)

    versions = commands.add_parser("versions", help="list Talos versions")
    versions.add_argument("--broken", action="store_true", help="list the versions marked broken instead")
    versions.set_defaults(run=cmd_versions)
    extensions = commands.add_parser("extensions", help="list the official extensions of a version")
    extensions.add_argument("version")
    extensions.add_argument("--json", action="store_true", help="print the factory's JSON objects")
    extensions.set_defaults(run=cmd_extensions)
    overlays = commands.add_parser("overlays", help="list the official overlays of a version")
    overlays.add_argument("version")
    overlays.set_defaults(run=cmd_overlays)

    def transfer_flags(p: argparse.ArgumentParser) -> None:
        p.add_argument("-q", "--quiet", action="store_true", help="no progress display")
        p.add_argument("--retries", type=int, default=5, help="resume this many times after a cut (default 5)")
        p.add_argument("--limit-rate", type=rate, default=None, metavar="RATE", help="bytes/s, e.g. 500k, 2M")

    talosctl = commands.add_parser("talosctl", help="list talosctl binaries of a version, or download one")
    talosctl.add_argument("version")
    talosctl.add_argument("file", nargs="?", help="e.g. talosctl-linux-amd64")
    talosctl.add_argument("-o", "--output", help="destination (default: the file name)")
    transfer_flags(talosctl)
    talosctl.set_defaults(run=cmd_talosctl)

    download = commands.add_parser("download", help="download an asset, resuming an interrupted download")
    download.add_argument("id", help="schematic ID")
    download.add_argument("version", help="Talos version, e.g. v1.12.1")
    download.add_argument("path", help="asset, e.g. metal-amd64.iso, kernel-amd64, metal-amd64.raw.xz")
    download.add_argument("-o", "--output", help="destination (default: the asset name)")
    transfer_flags(download)
    download.set_defaults(run=cmd_download)

    pxe = commands.add_parser("pxe", help="print the iPXE script of a schematic")
    pxe.add_argument("id")
    pxe.add_argument("version")
    pxe.add_argument("target", help="<platform>-<arch>[-secureboot], e.g. metal-amd64")
    pxe.set_defaults(run=cmd_pxe)

    export = commands.add_parser("export", help="write an air-gap bundle a static web server can serve")
    export.add_argument("directory")
    export.add_argument("-s", "--schematic", action="append", required=True, help="schematic ID (repeatable)")
    export.add_argument("-v", "--version", action="append", required=True, help="Talos version (repeatable)")
    export.add_argument("-a", "--asset", action="append", required=True, help="asset path (repeatable)")
    export.add_argument(
        "--cache-dir",
        type=Path,
        help="the factory's filesystem cache (<state_dir>/cache), to bundle its signatures of the assets",
    )
    transfer_flags(export)
    export.set_defaults(run=cmd_export)

    verify = commands.add_parser("verify", help="check a bundle offline: digests, schematic IDs, signatures")
    verify.add_argument("directory")
    verify.add_argument("--key", help="pin the factory's cosign public key (PEM) instead of the bundled copy")
    verify.add_argument("--require-signatures", action="store_true", help="fail on unsigned assets")
    verify.set_defaults(local=cmd_verify)
    return parser


async def run_command(command: Command, args: argparse.Namespace) -> int:
    async with AsyncClient(args.url) as client:
        return await command(client, args)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    local: Callable[[argparse.Namespace], int] | None = getattr(args, "local", None)
    try:
        if args.command == "schematic" and args.schematic_command == "create":
            args.body = read_input(args.file)
        if local is not None:
            return local(args)
        command: Command = args.run
        return asyncio.run(run_command(command, args))
    except UsageError as exc:
        sys.stderr.write(f"{PROG}: {exc}\n")
        return 2
    except ImageFactoryError as exc:
        sys.stderr.write(f"{PROG}: {exc}\n")
        return 1
    except KeyboardInterrupt:
        sys.stderr.write(f"\n{PROG}: interrupted; run the same command again to resume\n")
        return 130


def entry_point() -> NoReturn:
    sys.exit(main())
