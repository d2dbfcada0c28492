"""The overlay installer contract (imager spec §10, §1.5): one argument, YAML on stdin, YAML on stdout.

`installers/<name>` of the overlay image pulled for the build host is run as a plain subprocess:

* `get-options` reads the schematic's `overlay.options` and answers `{name, kernelArgs,
  partitionOptions: {offset}}`: kernel arguments set after the platform's (§3.2), and the LBAs to
  skip before the primary GPT entry array so that firmware fits at fixed offsets (§7.2, §10);
* `install` reads `{installDisk, mountPrefix, artifactsPath, extraOptions}` (Go's `overlay.InstallOptions`
  field order) and writes the board's boot firmware into the raw image and files under
  `<mountPrefix>/boot/EFI/`. There are no flags: paths and options travel only in the YAML document.

A non-zero exit is a build failure (`ToolFailed`, 500): the overlay image is at fault, not the request.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import yaml

from services.shared.errors import Internal
from services.shared.tools import run_tool

_TIMEOUT: Final = 300
_INDENT: Final = "    "


@dataclass(frozen=True)
class OverlayOptions:
    """What `get-options` answered (Go `overlay.Options`)."""

    name: str
    kernel_args: tuple[str, ...] = ()
    partition_offset: int = 0  # `partitionOptions.offset`, in logical sectors (gpt.WithSkipLBAs)


@dataclass(frozen=True)
class OverlayInstaller:
    """One overlay ready to run: its host-arch `installers/<name>`, its `artifacts/` tree, the schematic's
    options as YAML (empty = none) and the options the installer answered for them."""

    installer: Path
    artifacts: Path
    options: OverlayOptions
    extra_options: str = ""


@dataclass(frozen=True)
class InstallRequest:
    install_disk: Path
    mount_prefix: Path
    artifacts_path: Path
    extra_options: str = ""  # canonical YAML of `overlay.options` (services.schematic.canonical.options_yaml)


def get_options_argv(installer: Path) -> list[str]:
    return [os.fspath(installer), "get-options"]


def install_argv(installer: Path) -> list[str]:
    return [os.fspath(installer), "install"]


def options_input(extra_options: str) -> bytes:
    """`get-options` stdin: the options map itself; an empty map is `{}` (go-yaml's rendering of it)."""
    return (extra_options or "{}\n").encode()


def install_input(request: InstallRequest) -> bytes:
    """`install` stdin. The options are nested as they are (re-indented, never re-encoded), so Go-typed
    scalars such as `"1"` vs `1` reach the installer exactly as the schematic ID hashed them."""
    paths = {
        "installDisk": os.fspath(request.install_disk),
        "mountPrefix": os.fspath(request.mount_prefix),
        "artifactsPath": os.fspath(request.artifacts_path),
    }
    head = yaml.safe_dump(paths, sort_keys=False, default_flow_style=False, width=1 << 16)
    if not request.extra_options:
        return (head + "extraOptions: {}\n").encode()
    nested = "".join(_INDENT + line if line.strip() else line for line in request.extra_options.splitlines(True))
    return (head + "extraOptions:\n" + nested.rstrip("\n") + "\n").encode()


def parse_options(stdout: bytes) -> OverlayOptions:
    """Decode `get-options` output the way go-yaml fills `overlay.Options` (unknown keys ignored)."""
    try:
        doc = yaml.safe_load(stdout)
    except yaml.YAMLError as exc:
        raise Internal(f"overlay installer get-options printed invalid YAML: {exc}") from None
    doc = _mapping(doc if doc is not None else {}, "get-options output")
    args = doc.get("kernelArgs") or []
    if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
        raise Internal(f"overlay installer get-options: kernelArgs must be a list of strings, got {args!r}")
    partition = _mapping(doc.get("partitionOptions") or {}, "partitionOptions")
    offset = partition.get("offset") or 0
    if isinstance(offset, bool) or not isinstance(offset, int) or not 0 <= offset < 1 << 64:
        raise Internal(f"overlay installer get-options: partitionOptions.offset must be a uint64, got {offset!r}")
    name = doc.get("name") or ""
    if not isinstance(name, str):
        raise Internal(f"overlay installer get-options: name must be a string, got {name!r}")
    return OverlayOptions(name=name, kernel_args=tuple(args), partition_offset=offset)


async def get_options(installer: Path, extra_options: str) -> OverlayOptions:
    result = await run_tool(get_options_argv(installer), stdin=options_input(extra_options), timeout=_TIMEOUT)
    return parse_options(result.stdout)


async def install(installer: Path, request: InstallRequest, *, cwd: Path | None = None) -> None:
    await run_tool(install_argv(installer), stdin=install_input(request), cwd=cwd, timeout=_TIMEOUT)


def _mapping(value: object, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise Internal(f"overlay installer {what} must be a mapping, got {type(value).__name__}")
    return value
