"""A throwaway Sigstore instance for tests: a Fulcio-like CA, a CT log and a Rekor key, its trusted root
JSON, and cosign v2 (legacy `.sig`) keyless signatures made with it.

No real legacy keyless signature can be fetched offline, so this builds what cosign 2 + Fulcio + Rekor
produce: a short-lived leaf with an embedded precertificate SCT (RFC 6962 §3.2), a hashedrekord entry
and its signed entry timestamp in the `dev.sigstore.cosign/bundle` annotation.
"""

from __future__ import annotations

import base64
import hashlib
import json
import struct
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from services.catalog.signatures import (
    CERTIFICATE_ANNOTATION,
    REKOR_BUNDLE_ANNOTATION,
    SIGNATURE_ANNOTATION,
    LegacySignature,
)

ISSUER_V1 = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.1")
ISSUER_V2 = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.8")
PRECERT_SCTS = x509.ObjectIdentifier("1.3.6.1.4.1.11129.2.4.2")
_SPKI = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _spki(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(*_SPKI)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _der_octets(content: bytes) -> bytes:
    return b"\x04" + _der_length(len(content)) + content


def _der_utf8(text: str) -> bytes:
    raw = text.encode()
    return b"\x0c" + _der_length(len(raw)) + raw


def _der_length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


@dataclass
class FakeSigstore:
    ca_key: ec.EllipticCurvePrivateKey = field(default_factory=lambda: ec.generate_private_key(ec.SECP384R1()))
    ct_key: ec.EllipticCurvePrivateKey = field(default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))
    rekor_key: ec.EllipticCurvePrivateKey = field(default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))
    epoch: datetime = field(default_factory=lambda: datetime.now(UTC).replace(microsecond=0) - timedelta(days=2))

    def __post_init__(self) -> None:
        name = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "test"),
                x509.NameAttribute(NameOID.COMMON_NAME, "fake-fulcio"),
            ]
        )
        public = self.ca_key.public_key()
        self.ca_cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(self.epoch - timedelta(days=1))
            .not_valid_after(self.epoch + timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(_key_usage(cert_sign=True), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
            .sign(self.ca_key, hashes.SHA384())
        )

    def trusted_root_json(self) -> bytes:
        start = {"start": (self.epoch - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")}

        def log(key: ec.EllipticCurvePrivateKey, url: str) -> dict[str, object]:
            spki = _spki(key.public_key())
            return {
                "baseUrl": url,
                "hashAlgorithm": "SHA2_256",
                "publicKey": {"rawBytes": _b64(spki), "keyDetails": "PKIX_ECDSA_P256_SHA_256", "validFor": start},
                "logId": {"keyId": _b64(hashlib.sha256(spki).digest())},
            }

        root = {
            "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
            "tlogs": [log(self.rekor_key, "https://rekor.invalid")],
            "certificateAuthorities": [
                {
                    "subject": {"organization": "test", "commonName": "fake-fulcio"},
                    "uri": "https://fulcio.invalid",
                    "certChain": {
                        "certificates": [{"rawBytes": _b64(self.ca_cert.public_bytes(serialization.Encoding.DER))}]
                    },
                    "validFor": start,
                }
            ],
            "ctlogs": [log(self.ct_key, "https://ctfe.invalid")],
            "timestampAuthorities": [],
        }
        return json.dumps(root).encode()

    def issue(
        self, email: str, issuer: str, not_before: datetime, *, ct_key: ec.EllipticCurvePrivateKey | None = None
    ) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
        """A Fulcio-style 10-minute leaf for `email`, with an embedded SCT from `ct_key` (ours by default)."""
        leaf_key = ec.generate_private_key(ec.SECP256R1())
        public = leaf_key.public_key()
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([]))
            .issuer_name(self.ca_cert.subject)
            .public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before)
            .not_valid_after(not_before + timedelta(minutes=10))
            .add_extension(_key_usage(digital_signature=True), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.ca_key.public_key()), critical=False)
            .add_extension(x509.SubjectAlternativeName([x509.RFC822Name(email)]), critical=True)
            .add_extension(x509.UnrecognizedExtension(ISSUER_V1, issuer.encode()), critical=False)
            .add_extension(x509.UnrecognizedExtension(ISSUER_V2, _der_utf8(issuer)), critical=False)
        )
        # The SCT signs the precertificate TBS: the final TBS minus the SCT extension itself.
        tbs = builder.sign(self.ca_key, hashes.SHA384()).tbs_certificate_bytes
        sct_list = self._sct_list(tbs, not_before + timedelta(seconds=1), ct_key or self.ct_key)
        cert = builder.add_extension(
            x509.UnrecognizedExtension(PRECERT_SCTS, _der_octets(sct_list)), critical=False
        ).sign(self.ca_key, hashes.SHA384())
        assert cert.tbs_precertificate_bytes == tbs
        return leaf_key, cert

    def _sct_list(self, tbs: bytes, when: datetime, ct_key: ec.EllipticCurvePrivateKey) -> bytes:
        millis = int(when.timestamp()) * 1000
        issuer_key_hash = hashlib.sha256(_spki(self.ca_key.public_key())).digest()
        signed = (
            struct.pack("!BBQH", 0, 0, millis, 1)  # v1, certificate_timestamp, timestamp, precert_entry
            + issuer_key_hash
            + len(tbs).to_bytes(3, "big")
            + tbs
            + struct.pack("!H", 0)  # no extensions
        )
        signature = ct_key.sign(signed, ec.ECDSA(hashes.SHA256()))
        log_id = hashlib.sha256(_spki(ct_key.public_key())).digest()
        sct = (
            struct.pack("!B", 0)
            + log_id
            + struct.pack("!QH", millis, 0)
            + struct.pack("!BBH", 4, 3, len(signature))  # sha256, ecdsa
            + signature
        )
        return struct.pack("!HH", len(sct) + 2, len(sct)) + sct

    def legacy_signature(
        self,
        payload: bytes,
        *,
        email: str = "releasemgr@siderolabs.com",
        issuer: str = "https://accounts.google.com",
        signed_after: timedelta = timedelta(seconds=30),
        ct_key: ec.EllipticCurvePrivateKey | None = None,
        rekor_key: ec.EllipticCurvePrivateKey | None = None,
        logged_payload: bytes | None = None,
        signing_key: ec.EllipticCurvePrivateKey | None = None,
    ) -> LegacySignature:
        """What `cosign sign` (v2, keyless) leaves in a `.sig` layer, logged `signed_after` cert issuance."""
        not_before = self.epoch + timedelta(hours=1)
        leaf_key, cert = self.issue(email, issuer, not_before, ct_key=ct_key)
        signature = (signing_key or leaf_key).sign(payload, ec.ECDSA(hashes.SHA256()))
        cert_pem = cert.public_bytes(serialization.Encoding.PEM)
        body = {
            "apiVersion": "0.0.1",
            "kind": "hashedrekord",
            "spec": {
                "data": {
                    "hash": {"algorithm": "sha256", "value": hashlib.sha256(logged_payload or payload).hexdigest()}
                },
                "signature": {"content": _b64(signature), "publicKey": {"content": _b64(cert_pem)}},
            },
        }
        signer = rekor_key or self.rekor_key
        entry = {
            "body": _b64(json.dumps(body, separators=(",", ":")).encode()),
            "integratedTime": int((not_before + signed_after).timestamp()),
            "logID": hashlib.sha256(_spki(self.rekor_key.public_key())).hexdigest(),
            "logIndex": 4242,
        }
        canonical = json.dumps(entry, sort_keys=True, separators=(",", ":")).encode()
        rekor_bundle = {
            "SignedEntryTimestamp": _b64(signer.sign(canonical, ec.ECDSA(hashes.SHA256()))),
            "Payload": entry,
        }
        annotations = {
            SIGNATURE_ANNOTATION: _b64(signature),
            CERTIFICATE_ANNOTATION: cert_pem.decode(),
            REKOR_BUNDLE_ANNOTATION: json.dumps(rekor_bundle),
        }
        return LegacySignature(payload, signature, annotations)


def _key_usage(*, digital_signature: bool = False, cert_sign: bool = False) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )
