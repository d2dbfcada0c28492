"""From a request (schematic ID, version, path) to a buildable asset: profile, inputs, key (spec §2.6, §4, §5).

The checks run in the reference's order so the same bad request fails with the same status and text:
schematic (404) → version (400; the reference answers 500) → profile path (400) → catalog lookups
(404 version not available, 400 unknown extension/overlay) → enhancement (400).
"""

from __future__ import annotations

import functools
import hashlib
import time
from collections import OrderedDict
from dataclasses import dataclass

import yaml
from prometheus_client import Counter

from services.builder import outputs
from services.builder.adapters.images import ImageStore
from services.builder.adapters.services import BuildInputs, CatalogClient, SchematicsClient
from services.builder.asset_key import asset_key
from services.builder.enhance import (
    ENHANCE_ERROR_PREFIX,
    FactorySettings,
    enhance,
    fill_output_defaults,
    required_overlay,
)
from services.builder.getorbuild import AssetRequest
from services.builder.mime import content_type
from services.builder.outputs import HOST_ARCH
from services.builder.profile import PROFILE_PATH_ERROR_PREFIX, Profile, parse_profile_path
from services.builder.secureboot.signer import SecureBootSigner as Signer
from services.catalog.catalogs import OverlayEntry
from services.catalog.versions import Version, parse_requested
from services.schematic.model import Schematic
from services.shared.errors import Internal, InvalidArgument


@dataclass(frozen=True)
class Plan:
    profile: Profile
    inputs: BuildInputs
    request: AssetRequest


PLAN_TTL_SECONDS = 30.0
PLAN_MEMO_SIZE = 4096

# The reference's name: requested extension names (and overlay names) per asset request (spec §14).
EXTENSION_HITS = Counter(
    "image_factory_profile_system_extension_hits_total", "Asset requests per system extension or overlay", ["extension"]
)


class Planner:
    def __init__(
        self,
        schematics: SchematicsClient,
        catalog: CatalogClient,
        images: ImageStore,
        settings: FactorySettings,
        signer: Signer,
    ) -> None:
        self._schematics = schematics
        self._catalog = catalog
        self._images = images
        self._settings = settings
        self._signer = signer
        self._signing_identity = SigningIdentity(signer)
        self._plans: OrderedDict[tuple[str, str, str], tuple[float, Plan, tuple[str, ...]]] = OrderedDict()

    async def plan(self, schematic_id: str, version_text: str, path: str) -> Plan:
        """The plan of one asset request, reused for `PLAN_TTL_SECONDS`.

        Everything a plan depends on is immutable (the schematic, by its ID) or is itself reused for a
        while (a release tag's digest in the catalog, the signing identity), so a repeated request —
        every download of a cached asset — skips the schematic and catalog round trips and the key
        computation. Failures are never reused.
        """
        memo_key = (schematic_id, version_text, path)
        known = self._plans.get(memo_key)
        if known is not None and time.monotonic() - known[0] < PLAN_TTL_SECONDS:
            self._plans.move_to_end(memo_key)
            _, plan, requested = known
        else:
            plan, requested = await self._plan(schematic_id, version_text, path)
            self._plans[memo_key] = (time.monotonic(), plan, requested)
            self._plans.move_to_end(memo_key)
            while len(self._plans) > PLAN_MEMO_SIZE:
                self._plans.popitem(last=False)
        for name in requested:
            EXTENSION_HITS.labels(name).inc()
        return plan

    async def _plan(self, schematic_id: str, version_text: str, path: str) -> tuple[Plan, tuple[str, ...]]:
        """A fresh plan, and the extension and overlay names it was asked with (for the hit counter)."""
        fetched = await self._schematics.get(schematic_id)
        version = parse_requested(version_text)
        try:
            profile = parse_profile_path(path, version)
        except InvalidArgument as exc:
            raise InvalidArgument(PROFILE_PATH_ERROR_PREFIX + exc.message, reason=exc.reason) from None
        schematic = fetched.schematic
        takes_extensions = profile.output.kind.takes_extensions
        names = list(schematic.customization.system_extensions.official_extensions) if takes_extensions else []
        overlay_name = schematic.overlay.name if takes_extensions else ""
        requested = (*names, overlay_name) if overlay_name else tuple(names)
        inputs = await self._catalog.resolve(version.tag, profile.arch.value, names, overlay_name)
        extensions = await self._catalog.extensions(version.tag) if names else []
        overlays = await self._catalog.overlays(version.tag) if overlay_name else []
        try:
            overlay_profile = await self._overlay_profile(profile, fetched.schematic, version, overlays, inputs)
            enhanced = enhance(
                profile,
                schematic,
                version,
                schematic_id=fetched.id,
                settings=self._settings,
                extensions=extensions,
                overlays=overlays,
                overlay_profile=overlay_profile,
            )
        except InvalidArgument as exc:
            raise InvalidArgument(ENHANCE_ERROR_PREFIX + exc.message, reason=exc.reason) from None
        digests = input_digests(inputs)
        if enhanced.secureboot:
            digests.update(await self._signing_identity.digests())
        key = asset_key(enhanced, digests)
        final = fill_output_defaults(enhanced)
        request = AssetRequest(
            key=key,
            kind=final.output.kind.value,
            version=version.tag,
            arch=final.arch.value,
            media_type=content_type(path),
            file_name=path,
            build=functools.partial(
                outputs.build_output, final, inputs, self._images, fetched.canonical_yaml, self._signer
            ),
        )
        return Plan(final, inputs, request), requested

    async def _overlay_profile(
        self,
        profile: Profile,
        schematic: Schematic,
        version: Version,
        overlays: list[OverlayEntry],
        inputs: BuildInputs,
    ) -> dict[str, object] | None:
        entry = required_overlay(profile, schematic, version, overlays)
        if entry is None:
            return None
        if inputs.overlay is None:
            raise Internal(f"the catalog resolved no image for overlay {entry.name}")
        root = await self._images.rootfs(inputs.overlay, HOST_ARCH)
        path = root / "profiles" / f"{entry.name}.yaml"
        if not path.is_file():
            return None
        loaded = yaml.safe_load(path.read_text())
        return loaded if isinstance(loaded, dict) else None


class SigningIdentity:
    """Digests of the Secure Boot certificate and the PCR public key, for the keys of Secure Boot assets.

    Their bytes embed both, so a rotated key must mean new asset keys (and new builds), never the old
    assets signed by the old key. Asked of the signer at most once a minute.
    """

    TTL_SECONDS = 60.0

    def __init__(self, signer: Signer) -> None:
        self._signer = signer
        self._known: tuple[float, dict[str, str]] | None = None

    async def digests(self) -> dict[str, str]:
        if self._known is not None and time.monotonic() - self._known[0] < self.TTL_SECONDS:
            return self._known[1]
        certificate = await self._signer.certificate()
        _, pcr_public_key = await self._signer.sign_pcr({})
        digests = {
            "signer/secureboot-certificate": "sha256:" + hashlib.sha256(certificate).hexdigest(),
            "signer/pcr-public-key": "sha256:" + hashlib.sha256(pcr_public_key).hexdigest(),
        }
        self._known = (time.monotonic(), digests)
        return digests


def input_digests(inputs: BuildInputs) -> dict[str, str]:
    """Every upstream digest the output depends on: a new upstream build means a new asset key."""
    digests = {"imager": inputs.imager.digest, "installer-base": inputs.installer_base.digest}
    for name, image in inputs.extensions:
        digests[f"extension/{name}"] = image.digest
    if inputs.overlay is not None:
        digests["overlay"] = inputs.overlay.digest
    return digests
