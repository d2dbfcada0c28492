"""Authenticode signing of PE files (UKIs, systemd-boot) with `sbsign` (imager spec §6.4).

`sbsign` (Debian sbsigntool) writes SHA-256 Authenticode as a PKCS#7 SignedData WIN_CERTIFICATE, the
same shape as Talos' go-uefi signer; the lab booted such UKIs under enforced Secure Boot
(shared/lab/REPORT.md §4). The key file is read by sbsign in this process only.
"""

from __future__ import annotations

import os
from pathlib import Path

from services.shared.tools import run_tool

SIGN_TIMEOUT = 120.0  # seconds; a UKI is ~100 MiB and sbsign hashes it once


def sbsign_argv(input_path: Path, output_path: Path, key_path: Path, cert_path: Path) -> list[str]:
    return [
        "sbsign",
        "--key", os.fspath(key_path),
        "--cert", os.fspath(cert_path),
        "--output", os.fspath(output_path),
        os.fspath(input_path),
    ]  # fmt: skip


def sbverify_argv(path: Path, cert_path: Path) -> list[str]:
    return ["sbverify", "--cert", os.fspath(cert_path), os.fspath(path)]


async def sign_pe(input_path: Path, output_path: Path, key_path: Path, cert_path: Path) -> None:
    """Sign `input_path` into `output_path`; the output appears only once complete (STYLE §9)."""
    partial = output_path.with_name(output_path.name + ".partial")
    try:
        await run_tool(sbsign_argv(input_path, partial, key_path, cert_path), timeout=SIGN_TIMEOUT)
        partial.replace(output_path)
    finally:
        partial.unlink(missing_ok=True)


async def verify_pe(path: Path, cert_path: Path) -> bool:
    """True when `path` carries a valid Authenticode signature chaining to `cert_path`."""
    result = await run_tool(sbverify_argv(path, cert_path), timeout=SIGN_TIMEOUT, check=False)
    return result.returncode == 0
