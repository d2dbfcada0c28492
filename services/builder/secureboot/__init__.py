"""Secure Boot assets on the builder side (imager spec §6.1-§6.6). No private key ever lives here.

Orchestration (imager §6.6, factory §4 step 2):
    signer = GrpcSigner(stub)   # services.builder.adapters.secureboot_signer, or any `Signer`
    uki = await build_signed_uki(uki_options, signer, out, workdir)          # UKI: .pcrpkey, .pcrsig, Authenticode
    sdboot = await sign_sdboot(signer, sd_boot, workdir / "systemd-boot.efi.signed")
    files = await write_enrollment_files(signer, signer, workdir / "keys", include_well_known=...)
    SdBootPayload(..., secure_boot_enroll=<isoOptions.sdBootEnrollKeys>, extra_files=files.iso_extra_files())
"""

from services.builder.secureboot.media import EnrollmentFiles, write_enrollment_files
from services.builder.secureboot.signer import EnrollmentSigner, Signer
from services.builder.secureboot.uki import SignedUki, build_signed_uki, pcr_public_key, sign_sdboot

__all__ = [
    "EnrollmentFiles",
    "EnrollmentSigner",
    "SignedUki",
    "Signer",
    "build_signed_uki",
    "pcr_public_key",
    "sign_sdboot",
    "write_enrollment_files",
]
