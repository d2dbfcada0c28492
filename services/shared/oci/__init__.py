"""Async OCI distribution client shared by every service (see `client` for the design notes)."""

from .auth import AccessDenied
from .blobs import CHUNK_SIZE, BlobReader
from .client import RegistryClient
from .manifest import Descriptor, Manifest, Platform, index_bytes
from .reference import (
    Reference,
    digest_of,
    is_digest,
    parse_reference,
    referrers_tag,
    signature_tag,
    validate_digest,
)

__all__ = [
    "CHUNK_SIZE",
    "AccessDenied",
    "BlobReader",
    "Descriptor",
    "Manifest",
    "Platform",
    "Reference",
    "RegistryClient",
    "digest_of",
    "index_bytes",
    "is_digest",
    "parse_reference",
    "referrers_tag",
    "signature_tag",
    "validate_digest",
]
