"""Image references (`registry/repo[:tag][@sha256:…]`) and digests.

The grammar follows the distribution reference rules: lowercase path components separated by `/`,
tags of up to 128 word characters, dots and dashes. Only sha256 digests are accepted, because that
is all the factory produces or is asked for (schematic IDs are sha256 hex, spec §6.3/§6.5).
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from dataclasses import dataclass, replace
from typing import Final

from services.shared.errors import InvalidArgument

DOCKER_HUB: Final = "docker.io"

_DIGEST_RE: Final = re.compile(r"sha256:[0-9a-f]{64}")
_TAG_RE: Final = re.compile(r"[\w][\w.-]{0,127}")
_PATH_COMPONENT: Final = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REPOSITORY_RE: Final = re.compile(rf"{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*")
_HOST_LABEL: Final = r"(?:[A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9-]*[A-Za-z0-9])"
_REGISTRY_RE: Final = re.compile(rf"(?:{_HOST_LABEL}(?:\.{_HOST_LABEL})*|\[[0-9A-Fa-f:.]+\])(?::[0-9]+)?")
# distribution rejects longer names (reference.NameTotalLengthMax).
_MAX_NAME: Final = 255


def is_digest(text: str) -> bool:
    """True for `sha256:` followed by exactly 64 lowercase hex digits."""
    return _DIGEST_RE.fullmatch(text) is not None


def validate_digest(text: str) -> str:
    if not is_digest(text):
        raise InvalidArgument(f"invalid digest {text!r}: want sha256: and 64 lowercase hex digits")
    return text


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def referrers_tag(digest: str) -> str:
    """Tag of the OCI 1.1 referrers fallback index for `digest` (`sha256-<hex>`)."""
    return validate_digest(digest).replace(":", "-", 1)


def signature_tag(digest: str) -> str:
    """Tag cosign uses for legacy simple-signing signatures of `digest` (spec §9.4)."""
    return referrers_tag(digest) + ".sig"


def validate_repository(repository: str) -> str:
    if len(repository) > _MAX_NAME or _REPOSITORY_RE.fullmatch(repository) is None:
        raise InvalidArgument(f"invalid repository name {repository!r}")
    return repository


def validate_tag(tag: str) -> str:
    if _TAG_RE.fullmatch(tag) is None:
        raise InvalidArgument(f"invalid tag {tag!r}")
    return tag


def is_registry_host(segment: str) -> bool:
    """Whether the first path segment names a registry rather than a repository component.

    Same rule as docker and go-containerregistry: it must look like a host (a dot or a port) or be
    `localhost`; otherwise `siderolabs/imager` would be read as host `siderolabs`.
    """
    return "." in segment or ":" in segment or segment == "localhost"


@dataclass(frozen=True)
class Reference:
    registry: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    @property
    def name(self) -> str:
        """`registry/repository`, the identity cosign signs (spec §9.4)."""
        return f"{self.registry}/{self.repository}"

    @property
    def ref(self) -> str:
        """What goes after `/manifests/`: the digest wins over the tag; no tag means `latest`."""
        return self.digest or self.tag or "latest"

    def with_digest(self, digest: str) -> Reference:
        return replace(self, digest=validate_digest(digest))

    def with_tag(self, tag: str) -> Reference:
        return replace(self, tag=validate_tag(tag))

    def __str__(self) -> str:
        text = self.name
        if self.tag is not None:
            text += f":{self.tag}"
        if self.digest is not None:
            text += f"@{self.digest}"
        return text


def parse_reference(text: str, *, default_registry: str = DOCKER_HUB) -> Reference:
    """Parse `[registry/]repo[:tag][@sha256:…]`; a missing registry means `default_registry`."""
    rest, at, digest = text.partition("@")
    if at:
        validate_digest(digest)
    first, slash, remainder = rest.partition("/")
    if slash and is_registry_host(first):
        registry, path = first, remainder
        if _REGISTRY_RE.fullmatch(registry) is None:
            raise InvalidArgument(f"invalid registry {registry!r} in reference {text!r}")
    else:
        registry, path = default_registry, rest
    # The tag is after the last colon of the last path component; colons before it belong to
    # the registry port, which has been split off already.
    repository, colon, tag = path.rpartition(":") if ":" in path.rsplit("/", 1)[-1] else (path, "", "")
    if not repository:
        raise InvalidArgument(f"invalid reference {text!r}: no repository")
    if registry == DOCKER_HUB and "/" not in repository:
        # Docker Hub's official images live under library/ (`alpine` is `library/alpine`).
        repository = f"library/{repository}"
    validate_repository(repository)
    if colon:
        validate_tag(tag)
    return Reference(registry, repository, tag if colon else None, digest if at else None)


_PRIVATE_NETWORKS = tuple(ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"))


def registry_scheme(host: str, *, insecure: bool = False) -> str:
    """`http` or `https` for a registry host, the way go-containerregistry's `Registry.Scheme()` decides:
    plain HTTP when insecure, for `localhost:*`, loopback addresses and RFC 1918 private addresses."""
    if insecure or host.startswith("localhost:") or "127.0.0.1" in host or "::1" in host:
        return "http"
    bare = host.rsplit(":", 1)[0] if host.count(":") == 1 else host.strip("[]")
    try:
        address = ipaddress.ip_address(bare)
    except ValueError:
        return "https"
    return "http" if any(address in network for network in _PRIVATE_NETWORKS) else "https"
