"""Keyless trust: the Sigstore trusted root and the signer identity policy (factory spec §7.2, §13).

The trusted root (Fulcio CAs, CT log keys, Rekor keys, TSAs) defaults to the public-good copy that
sigstore-python ships inside its wheel, read straight from the package data: no TUF refresh, no write
to a TUF cache directory. A newer root can be passed in when the public-good keys rotate before the
pinned package is upgraded.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from importlib import resources
from typing import Final

from cryptography import x509
from cryptography.hazmat import asn1
from sigstore.errors import Error as SigstoreError
from sigstore.errors import VerificationError
from sigstore.models import TrustedRoot
from sigstore_models.trustroot import v1 as trustroot_v1

from services.shared.config import ConfigError

DEFAULT_SUBJECT_REGEXP: Final = r"(@siderolabs\.com$|^releasemgr-svc@talos-production\.iam\.gserviceaccount\.com$)"
DEFAULT_ISSUER: Final = "https://accounts.google.com"
# Where sigstore-python keeps the public-good trusted root inside its package (`sigstore/_store/`).
_EMBEDDED_ROOT: Final = ("sigstore._store", "https%3A%2F%2Ftuf-repo-cdn.sigstore.dev", "trusted_root.json")
# Fulcio's OIDC issuer extensions: v2 is a DER UTF8String, v1 (deprecated) the raw bytes.
_ISSUER_V2_OID: Final = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.8")
_ISSUER_V1_OID: Final = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.1")
_SIGSTORE_OTHERNAME_OID: Final = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.7")


def load_trusted_root(trusted_root_json: bytes | None = None) -> TrustedRoot:
    """The given trusted root JSON, or the public-good one bundled with sigstore-python."""
    if trusted_root_json is None:
        package, *path = _EMBEDDED_ROOT
        trusted_root_json = resources.files(package).joinpath(*path).read_bytes()
    try:
        return TrustedRoot(trustroot_v1.TrustedRoot.from_json(trusted_root_json))
    except (SigstoreError, ValueError) as exc:
        raise ConfigError(f"invalid Sigstore trusted root: {' '.join(str(exc).split())}") from None


@dataclass(frozen=True)
class Identity:
    """Who may have signed: a SAN matched by regexp (unanchored, like Go `MatchString`) and the OIDC
    issuer, exact or by regexp (`containerSignature.{subjectRegExp,issuer,issuerRegExp}`, spec §13).

    It is a sigstore-python `VerificationPolicy`: `verify()` raises sigstore's `VerificationError`.
    Patterns use Python `re`, which agrees with Go RE2 on the syntax such identities use.
    """

    subject: re.Pattern[str]
    issuer: str = DEFAULT_ISSUER
    issuer_regexp: re.Pattern[str] | None = None

    @classmethod
    def from_config(
        cls, subject_regexp: str = DEFAULT_SUBJECT_REGEXP, issuer: str = DEFAULT_ISSUER, issuer_regexp: str = ""
    ) -> Identity:
        return cls(
            _compile(subject_regexp, "subjectRegExp"),
            issuer,
            _compile(issuer_regexp, "issuerRegExp") if issuer_regexp.strip() else None,
        )

    def verify(self, cert: x509.Certificate) -> None:
        subjects = certificate_subjects(cert)
        issuer = certificate_issuer(cert)
        if self.issuer_regexp is not None:
            issuer_ok = self.issuer_regexp.search(issuer) is not None
        else:
            issuer_ok = issuer == self.issuer
        if not issuer_ok or not any(self.subject.search(s) for s in subjects):
            raise VerificationError(
                "none of the expected identities matched what was in the certificate, "
                f"got subjects [{', '.join(subjects)}] with issuer {issuer}"
            )


def certificate_subjects(cert: x509.Certificate) -> list[str]:
    """Every SAN cosign matches against the subject regexp: emails, URIs, DNS names, IPs, Sigstore otherName."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    names: list[str] = list(san.get_values_for_type(x509.RFC822Name))
    names += san.get_values_for_type(x509.UniformResourceIdentifier)
    names += san.get_values_for_type(x509.DNSName)
    names += [
        str(ip)
        for ip in san.get_values_for_type(x509.IPAddress)
        if isinstance(ip, ipaddress.IPv4Address | ipaddress.IPv6Address)
    ]
    names += [
        _der_utf8(o.value) for o in san.get_values_for_type(x509.OtherName) if o.type_id == _SIGSTORE_OTHERNAME_OID
    ]
    return names


def certificate_issuer(cert: x509.Certificate) -> str:
    """The OIDC issuer Fulcio recorded, v2 extension first (as cosign reads it)."""
    for oid, decode in ((_ISSUER_V2_OID, _der_utf8), (_ISSUER_V1_OID, _raw_utf8)):
        try:
            ext = cert.extensions.get_extension_for_oid(oid).value
        except x509.ExtensionNotFound:
            continue
        if isinstance(ext, x509.UnrecognizedExtension):
            return decode(ext.value)
    return ""


def _der_utf8(value: bytes) -> str:
    try:
        return asn1.decode_der(str, value)
    except ValueError:
        return ""


def _raw_utf8(value: bytes) -> str:
    return value.decode("utf-8", errors="replace")


def _compile(pattern: str, key: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise ConfigError(f"containerSignature.{key}: invalid regular expression: {exc}") from None
