"""Secure Boot UKI and systemd-boot: assemble, predict and sign `.pcrsig`, Authenticode-sign (imager spec
§6.1-§6.4, §6.6).

The recipe (Talos `BuildSigned`): fetch the PCR public key for `.pcrpkey`, lay out the signed section order,
predict PCR 11 over exactly those sections, have the signer sign each profile's policy, assemble the PE with
the `.pcrsig` sections in place, then have the signer Authenticode-sign the file.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, replace
from pathlib import Path

from services.builder.assets.uki import UkiOptions, build_uki, check_stub, kernel_uname, uki_sections
from services.builder.secureboot.pcrsig import check_pcr_signatures, measured_sections, pcr_values, pcrsig_document
from services.builder.secureboot.signer import Signer
from services.builder.steps.pe import PeLayout

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SignedUki:
    path: Path
    layout: PeLayout  # of the unsigned PE; signing only appends the certificate table
    pcrsigs: tuple[bytes, ...]  # the `.pcrsig` documents, in file order


async def pcr_public_key(signer: Signer) -> bytes:
    """PEM of the PCR signing key: SignPCR with no values answers with the key alone."""
    _, public_key_pem = await signer.sign_pcr({})
    return public_key_pem


async def build_signed_uki(options: UkiOptions, signer: Signer, out: Path, workdir: Path) -> SignedUki:
    """Build the Secure Boot UKI of `options` into `out`; `workdir` (build-private) holds the unsigned PE."""
    await asyncio.to_thread(check_stub, options)  # fail before asking the signer for anything
    public_key_pem = await pcr_public_key(signer)
    uname = options.uname if options.uname is not None else await asyncio.to_thread(kernel_uname, options.kernel)
    # The resolved .uname is pinned ("" = none), so the measured layout and the written one cannot differ.
    base = replace(options, uname=uname or "", pcrpkey=public_key_pem, pcrsigs=())
    measured = await asyncio.to_thread(measured_sections, options.stub, uki_sections(base, uname))
    pcrsigs = []
    for values in pcr_values(measured):
        entries, _ = await signer.sign_pcr(values)
        # Checked against the key in .pcrpkey: a key that changed since `pcr_public_key` fails here.
        check_pcr_signatures(values, entries, public_key_pem)
        pcrsigs.append(pcrsig_document(entries))
    unsigned = workdir / f"{out.name}.unsigned"
    layout = await build_uki(replace(base, pcrsigs=tuple(pcrsigs)), unsigned)
    try:
        await signer.sign_pe(unsigned, out)
    finally:
        unsigned.unlink(missing_ok=True)
    logger.debug("signed UKI %s with %d .pcrsig section(s)", out, len(pcrsigs))
    return SignedUki(out, layout, tuple(pcrsigs))


async def sign_sdboot(signer: Signer, sdboot: Path, out: Path) -> Path:
    """`systemd-boot.efi` → signed copy (§6.4: SecureBoot builds sign sd-boot with the UKI key)."""
    await signer.sign_pe(sdboot, out)
    return out
