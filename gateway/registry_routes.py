"""Parse `/v2/*` paths of the OCI registry frontend exactly as the reference does (spec §2.13)."""

from __future__ import annotations

from dataclasses import dataclass

from services.shared.errors import InvalidArgument, NotFound

SOURCE_NAMESPACE = "siderolabs"
PROXY_RESOURCES = {"manifests", "blobs", "referrers"}
SCHEMATIC_RESOURCES = {"manifests", "blobs", "referrers"}


@dataclass(frozen=True)
class Ping:
    pass


@dataclass(frozen=True)
class ProxyRoute:
    """`/v2/siderolabs/<image>/<resource>/<reference>`: the source-image proxy (spec §9.7)."""

    image: str
    resource: str
    reference: str


@dataclass(frozen=True)
class SchematicRoute:
    """`/v2/<image>/<schematic>/<resource>/<reference>`: generated installer images (spec §9)."""

    image: str
    schematic: str
    resource: str
    reference: str


Route = Ping | ProxyRoute | SchematicRoute


def parse_v2_path(path: str) -> Route:
    """`path` is what follows `/v2` (may be empty). Unknown shapes are NotFound with the reference's text."""
    trimmed = path.strip("/")
    if not trimmed:
        return Ping()
    segments = trimmed.split("/")
    if len(segments) < 3:
        raise NotFound(f'unknown registry path: "{path}"')
    reference, resource, repo = segments[-1], segments[-2], segments[:-2]
    if not reference:
        raise NotFound(f'unknown registry path: "{path}"')
    if repo[0] == SOURCE_NAMESPACE:
        image = "/".join(repo[1:])
        allowed = resource in PROXY_RESOURCES or (resource == "tags" and reference == "list")
        if not image or not allowed:
            raise NotFound(f'unknown registry path: "{path}"')
        return ProxyRoute(image, resource, reference)
    if resource not in SCHEMATIC_RESOURCES or len(repo) != 2:
        raise NotFound(f'unknown registry path: "{path}"')
    return SchematicRoute(repo[0], repo[1], resource, reference)


@dataclass(frozen=True)
class InstallerImage:
    platform: str
    secureboot: bool


def requested_image(image: str) -> InstallerImage:
    """Image name → installer variant (spec §2.13 `getRequestedImage`)."""
    if image == "installer":
        return InstallerImage("metal", False)
    if image == "installer-secureboot":
        return InstallerImage("metal", True)
    if image.endswith("-installer-secureboot") and len(image) > len("-installer-secureboot"):
        return InstallerImage(image.removesuffix("-installer-secureboot"), True)
    if image.endswith("-installer") and len(image) > len("-installer"):
        return InstallerImage(image.removesuffix("-installer"), False)
    raise InvalidArgument(f"invalid image: {image}")
