"""Image signature verification: the configured options tried in order (factory spec §7.2, §13).

Options, in order: the public key (if `containerSignature.publicKeyFile` is set), then keyless (if
`subjectRegExp` is not empty). For each, the bundled form (cosign v3 referrers) is tried before the
legacy `.sig` form. The first success wins; otherwise every reason is joined into one line:
`failed to verify image signature for <ref>: …` (`VerificationFailed`).

Everything here is pure: the caller fetches the `SignatureMaterial` (see `signatures`) and, because a
digest's signatures cannot change, may keep successes in a `VerificationCache` and skip both the fetch
and the check next time. Failures are never cached (signatures may be pushed later).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from services.catalog.identity import DEFAULT_ISSUER, DEFAULT_SUBJECT_REGEXP, Identity, load_trusted_root
from services.catalog.signatures import LegacySignature, SignatureMaterial
from services.catalog.verify_key import PublicKeyVerifier
from services.catalog.verify_keyless import KeylessVerifier
from services.shared.errors import VerificationFailed
from services.shared.oci.reference import validate_digest


@dataclass(frozen=True)
class SignatureConfig:
    """`containerSignature.*` (spec §13); the caller reads `publicKeyFile` into `public_key_pem`.

    `trusted_root_json` is ours, not the Go service's: a Sigstore trusted root to use instead of the
    one bundled with sigstore-python (the Go service gets its root from TUF at startup).
    """

    disabled: bool = False
    subject_regexp: str = DEFAULT_SUBJECT_REGEXP
    issuer: str = DEFAULT_ISSUER
    issuer_regexp: str = ""
    public_key_pem: bytes | None = None
    public_key_hash_algo: str = "sha256"
    trusted_root_json: bytes | None = None


class Method(StrEnum):
    """How an image was accepted; the texts are the Go service's `VerifyResult.Method`."""

    BUNDLED_KEY = "bundled: public key"
    BUNDLED_KEYLESS = "bundled: certificate subject"
    LEGACY_KEY = "legacy: public key"
    LEGACY_KEYLESS = "legacy: certificate subject"
    DISABLED = "verification disabled"


@dataclass(frozen=True)
class Verification:
    digest: str
    method: Method

    @property
    def verified(self) -> bool:
        return self.method is not Method.DISABLED


class SignatureChecker(Protocol):
    def verify_bundle(self, bundle: bytes, image_digest: str) -> None: ...

    def verify_legacy(self, signatures: Sequence[LegacySignature], image_digest: str) -> None: ...


@dataclass(frozen=True)
class Option:
    """One configured way to trust an image, with the methods it reports."""

    label: str
    checker: SignatureChecker
    bundled: Method
    legacy: Method


class Verifier:
    def __init__(self, options: Sequence[Option], *, disabled: bool = False) -> None:
        self.options = tuple(options)
        self.disabled = disabled

    @classmethod
    def from_config(cls, config: SignatureConfig) -> Verifier:
        """Build the options at startup; bad keys, regexps or roots raise `ConfigError` here."""
        if config.disabled:
            return cls((), disabled=True)
        options: list[Option] = []
        if config.public_key_pem is not None:
            key = PublicKeyVerifier.from_pem(config.public_key_pem, config.public_key_hash_algo)
            options.append(Option("public key", key, Method.BUNDLED_KEY, Method.LEGACY_KEY))
        if config.subject_regexp.strip():
            identity = Identity.from_config(config.subject_regexp, config.issuer, config.issuer_regexp)
            keyless = KeylessVerifier(identity, load_trusted_root(config.trusted_root_json))
            options.append(Option("keyless", keyless, Method.BUNDLED_KEYLESS, Method.LEGACY_KEYLESS))
        return cls(options)

    def verify(self, reference: str, digest: str, material: SignatureMaterial) -> Verification:
        """Accept `digest` (of the index for multi-arch images) or raise `VerificationFailed`."""
        validate_digest(digest)
        if self.disabled:
            return Verification(digest, Method.DISABLED)
        errors: list[str] = []
        if not self.options:
            errors.append("no verification options provided")
        for option in self.options:
            try:
                _verify_bundles(option.checker, material.bundles, digest)
                return Verification(digest, option.bundled)
            except VerificationFailed as exc:
                errors.append(f"bundled ({option.label}): {exc.message}")
            try:
                option.checker.verify_legacy(material.legacy, digest)
                return Verification(digest, option.legacy)
            except VerificationFailed as exc:
                errors.append(f"legacy ({option.label}): {exc.message}")
        raise VerificationFailed(f"failed to verify image signature for {reference}: {'; '.join(errors)}")


def _verify_bundles(checker: SignatureChecker, bundles: Sequence[bytes], digest: str) -> None:
    """Any one referrer bundle that verifies is enough."""
    if not bundles:
        raise VerificationFailed("no sigstore bundle referrers found")
    errors: list[str] = []
    for bundle in bundles:
        try:
            checker.verify_bundle(bundle, digest)
        except VerificationFailed as exc:
            errors.append(exc.message)
        else:
            return
    raise VerificationFailed("; ".join(errors))


class VerificationCache:
    """Successful verifications by digest, least recently used evicted first.

    Keyed by digest alone: the options are fixed for the life of a `Verifier`, so use one cache per
    verifier. Not thread-safe; the catalog uses it from its event loop.
    """

    def __init__(self, capacity: int = 4096) -> None:
        self.capacity = capacity
        self._entries: OrderedDict[str, Verification] = OrderedDict()

    def get(self, digest: str) -> Verification | None:
        found = self._entries.get(digest)
        if found is not None:
            self._entries.move_to_end(digest)
        return found

    def put(self, result: Verification) -> None:
        self._entries[result.digest] = result
        self._entries.move_to_end(result.digest)
        while len(self._entries) > self.capacity:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)
