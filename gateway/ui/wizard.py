"""What each wizard step offers, which step comes next, and the schematic it all adds up to.

Pure (factory spec §12): the handlers fetch the catalog facts (`Facts`) and pass them in. The
platform and board tables and the version gates come from the builder's domain modules, so the UI
offers exactly what the builder can build.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import yaml

from gateway.ui.state import STEP_FIELDS, STEP_MARKER, Step, Target, WizardState
from gateway.ui.strings import Translator
from services.builder import quirks
from services.builder.enums import Arch, Bootloader, Platform
from services.builder.platforms import BOARDS, PLATFORMS, Board, PlatformInfo, platform_info
from services.catalog.versions import InvalidVersion, Version, parse, parse_requested

STEP_ORDER: Final = tuple(Step)
# Overlays exist from Talos 1.7 (quirks.supports_overlay); SBC images need one, so older versions are not offered.
SBC_MIN_VERSION: Final = Version(1, 7, 0)
BOOTLOADER_MIN_VERSION: Final = parse("1.12.0-alpha.2")  # the reference's bootloader radio (spec §12 step 6)
DEFAULT_PLATFORM: Final = Platform.AWS
DEFAULT_BOARD: Final = "rpi_generic"
# Not something a person picks: the factory adds it itself where it is needed (spec §12 step 5).
HIDDEN_EXTENSIONS: Final = frozenset({"siderolabs/metal-agent"})
BOOTLOADER_CHOICES: Final = ("auto", Bootloader.SD_BOOT.value, Bootloader.GRUB.value, Bootloader.DUAL_BOOT.value)


class WizardError(Exception):
    """A field that no step could have produced: answered with 400 and this one line."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Extension:
    name: str  # "siderolabs/gvisor"
    ref: str  # "ghcr.io/siderolabs/gvisor:20231214.0-v1.6.0"
    description: str = ""
    author: str = ""

    @property
    def tag(self) -> str:
        return self.ref.rpartition(":")[2] if ":" in self.ref.rpartition("/")[2] else ""


@dataclass(frozen=True)
class Facts:
    """What the catalog says: offered versions (ascending) and, once a version is chosen, its extensions."""

    versions: tuple[Version, ...]
    latest_stable: Version | None = None
    extensions: tuple[Extension, ...] | None = None


@dataclass(frozen=True)
class VersionGroup:
    label: str
    versions: tuple[Version, ...]
    prerelease: bool


@dataclass(frozen=True)
class Choice:
    """Every answer, checked: what the final page and the schematic are made from."""

    target: Target
    version: Version
    platform: PlatformInfo
    board: Board | None
    arch: Arch
    secureboot: bool
    extensions: tuple[str, ...]
    kernel_args: tuple[str, ...]
    embedded_config: str
    overlay_options: Mapping[str, Any] | None
    bootloader: Bootloader | None


# -- what each step offers --------------------------------------------------------------------------


def offered_versions(target: str, versions: Sequence[Version]) -> tuple[Version, ...]:
    if target == Target.SBC:
        return tuple(v for v in versions if v >= SBC_MIN_VERSION)
    return tuple(versions)


def default_version(offered: Sequence[Version], latest_stable: Version | None) -> Version | None:
    """The latest stable release if offered, else the newest release, else the newest of all."""
    if latest_stable in offered:
        return latest_stable
    stable = [v for v in offered if not v.is_prerelease]
    return max(stable or offered, default=None)


def version_groups(offered: Sequence[Version], t: Translator) -> list[VersionGroup]:
    """Newest first, one group per minor line, pre-releases of a line in a group of their own."""
    groups: dict[tuple[int, int, bool], list[Version]] = {}
    for version in sorted(offered, reverse=True):
        groups.setdefault((version.major, version.minor, version.is_prerelease), []).append(version)
    out = []
    for (major, minor, pre), members in groups.items():
        label = f"{major}.{minor}"
        out.append(VersionGroup(t("version.group.prerelease", minor=label) if pre else label, tuple(members), pre))
    return out


def cloud_platforms(version: Version) -> tuple[PlatformInfo, ...]:
    return tuple(p for p in PLATFORMS if p.platform is not Platform.METAL and p.supported(version))


def offered_boards(version: Version) -> tuple[Board, ...]:
    return tuple(b for b in BOARDS if b.supported(version))


def arch_options(target: str, platform: PlatformInfo) -> tuple[Arch, ...]:
    return (Arch.ARM64,) if target == Target.SBC else platform.archs


def secureboot_offered(target: str, platform: PlatformInfo, version: Version) -> bool:
    return target != Target.SBC and platform.secureboot and quirks.supports_uki(version)


def customization_offers(target: str, version: Version) -> dict[str, bool]:
    return {
        "embedded": quirks.supports_embedded_config(version),
        "overlay": target == Target.SBC and quirks.supports_overlay(version),
        "bootloader": version >= BOOTLOADER_MIN_VERSION,
    }


def visible_extensions(catalog: Sequence[Extension]) -> list[Extension]:
    return [e for e in catalog if e.name not in HIDDEN_EXTENSIONS]


def search_extensions(catalog: Sequence[Extension], search: str, selected: Sequence[str]) -> list[Extension]:
    """Case-insensitive match on the full reference or the description; selected ones always stay."""
    needle = search.strip().lower()
    keep = set(selected)
    return [
        e
        for e in visible_extensions(catalog)
        if not needle or e.name in keep or needle in e.ref.lower() or needle in e.description.lower()
    ]


# -- which step is next -----------------------------------------------------------------------------


def chosen_version(state: WizardState) -> Version | None:
    """The committed version, None when absent or not semver."""
    try:
        return parse_requested(state.get("version")) if state.has("version") else None
    except InvalidVersion:
        return None


def _platform(state: WizardState) -> PlatformInfo | None:
    target = state.get("target")
    if target in (Target.METAL, Target.SBC):
        return platform_info(Platform.METAL)
    if target == Target.CLOUD and state.has("platform"):
        try:
            return platform_info(Platform(state.get("platform")))
        except ValueError:
            return None
    return None


def arch_is_automatic(state: WizardState) -> bool:
    """Nothing to ask: one architecture and no SecureBoot toggle (SBCs, single-arch clouds)."""
    platform, version = _platform(state), chosen_version(state)
    if platform is None or version is None:
        return False
    target = state.get("target")
    return len(arch_options(target, platform)) == 1 and not secureboot_offered(target, platform, version)


def steps_for(state: WizardState) -> list[Step]:
    """The steps this person walks through, in order (skipped ones left out)."""
    target = state.get("target")
    steps = [Step.TARGET, Step.VERSION]
    if target == Target.CLOUD:
        steps.append(Step.CLOUD)
    elif target == Target.SBC:
        steps.append(Step.SBC)
    if not arch_is_automatic(state):
        steps.append(Step.ARCH)
    return [*steps, Step.EXTENSIONS, Step.CUSTOMIZATION, Step.FINAL]


def current_step(state: WizardState) -> Step:
    for step in steps_for(state):
        if step is Step.FINAL or not state.has(STEP_MARKER[step]):
            return step
    return Step.FINAL


def normalize(state: WizardState) -> WizardState:
    """Drop fields that do not apply to the target and fill the architecture when there is no choice."""
    target = state.get("target")
    if target != Target.CLOUD and (state.has("platform") or "platform" in state.selected):
        state = state.with_values(platform=None)
    if target != Target.SBC and (state.has("board") or "board" in state.selected):
        state = state.with_values(board=None)
    platform = _platform(state)
    if arch_is_automatic(state) and platform is not None and not state.has("arch"):
        state = state.with_values(arch=arch_options(target, platform)[0].value, secureboot=None)
    return state


def back(state: WizardState) -> WizardState:
    """One visible step back: that step and every later one become remembered choices again."""
    steps = steps_for(state)
    current = current_step(state)
    previous = steps[max(steps.index(current) - 1, 0)]
    return state.uncommit(STEP_ORDER[STEP_ORDER.index(previous) :])


# -- checking the answers ---------------------------------------------------------------------------


def validate(state: WizardState, facts: Facts, t: Translator) -> Choice | None:
    """Raise WizardError for a committed value no step offers; the Choice once every step is done."""
    target_text = state.get("target")
    if not target_text:
        return None
    if target_text not in tuple(Target):
        raise WizardError(t("error.target", value=target_text))
    target = Target(target_text)
    if not state.has("version"):
        return None
    version = chosen_version(state)
    if version is None or version not in offered_versions(target, facts.versions):
        raise WizardError(t("error.version", value=state.get("version")))
    platform = _platform(state)
    board = None
    if target == Target.CLOUD:
        if not state.has("platform"):
            return None
        if platform is None or platform not in cloud_platforms(version):
            raise WizardError(t("error.platform", value=state.get("platform"), version=version))
    elif target == Target.SBC:
        if not state.has("board"):
            return None
        board = next((b for b in offered_boards(version) if b.name == state.get("board")), None)
        if board is None:
            raise WizardError(t("error.board", value=state.get("board"), version=version))
    assert platform is not None
    if not state.has("arch"):
        return None
    try:
        arch = Arch(state.get("arch"))
    except ValueError:
        arch = None
    if arch is None or arch not in arch_options(target, platform):
        raise WizardError(t("error.arch", value=state.get("arch")))
    secureboot = state.get("secureboot") not in ("", "0", "false", "off")
    if secureboot and not secureboot_offered(target, platform, version):
        raise WizardError(t("error.secureboot"))
    if not state.has("extensions"):
        return None
    if facts.extensions is not None:
        known = {e.name for e in visible_extensions(facts.extensions)}
        for name in state.extensions:
            if name not in known:
                raise WizardError(t("error.extension", value=name, version=version))
    if not state.has("cmdline-set"):
        return None
    offers = customization_offers(target, version)
    embedded = state.get("embedded-config").strip()
    if embedded and not offers["embedded"]:
        raise WizardError(t("error.embedded"))
    options = _overlay_options(state.get("overlay-options"), t) if offers["overlay"] else None
    bootloader_text = state.get("bootloader") or "auto"
    if bootloader_text not in BOOTLOADER_CHOICES or (bootloader_text != "auto" and not offers["bootloader"]):
        raise WizardError(t("error.bootloader", value=bootloader_text))
    return Choice(
        target=target,
        version=version,
        platform=platform,
        board=board,
        arch=arch,
        secureboot=secureboot,
        extensions=state.extensions,
        kernel_args=tuple(state.get("cmdline").split()),
        embedded_config=state.get("embedded-config") if embedded else "",
        overlay_options=options,
        bootloader=None if bootloader_text == "auto" else Bootloader(bootloader_text),
    )


def _overlay_options(text: str, t: Translator) -> Mapping[str, Any] | None:
    if not text.strip():
        return None
    try:
        parsed = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise WizardError(t("error.overlay_yaml", message=" ".join(str(exc).split()))) from None
    if not isinstance(parsed, dict):
        raise WizardError(t("error.overlay_options"))
    return parsed


# -- the schematic ----------------------------------------------------------------------------------


def schematic_document(choice: Choice) -> dict[str, Any]:
    """The schematic of spec §12 `wizardFinal`; the schematic service canonicalizes it."""
    customization: dict[str, Any] = {}
    if choice.kernel_args:
        customization["extraKernelArgs"] = list(choice.kernel_args)
    if choice.extensions:
        customization["systemExtensions"] = {"officialExtensions": list(choice.extensions)}
    if choice.bootloader is not None:
        customization["bootloader"] = choice.bootloader.value
    if choice.embedded_config:
        customization["embeddedMachineConfiguration"] = choice.embedded_config
    document: dict[str, Any] = {"customization": customization}
    if choice.board is not None and quirks.supports_overlay(choice.version):
        overlay: dict[str, Any] = {"image": choice.board.overlay_image, "name": choice.board.overlay_name}
        if choice.overlay_options:
            overlay["options"] = dict(choice.overlay_options)
        document = {"overlay": overlay, **document}
    return document


def schematic_yaml(choice: Choice) -> str:
    return yaml.safe_dump(schematic_document(choice), sort_keys=False)


def prefill(
    *,
    extensions: Sequence[str],
    kernel_args: Sequence[str],
    embedded_config: str,
    overlay_name: str,
    overlay_options_yaml: str,
    bootloader: str,
) -> WizardState:
    """Remembered choices from an existing schematic (`?schematic-id=`); the walk starts at step 1."""
    selected: dict[str, tuple[str, ...]] = {}
    if extensions:
        selected["extensions"] = tuple(extensions)
    if kernel_args:
        selected["cmdline"] = (" ".join(kernel_args),)
    if embedded_config:
        selected["embedded-config"] = (embedded_config,)
    if overlay_name:
        selected["target"] = (Target.SBC.value,)
        board = next((b for b in BOARDS if b.overlay_name == overlay_name), None)
        if board is not None:
            selected["board"] = (board.name,)
        if overlay_options_yaml.strip() and overlay_options_yaml.strip() != "{}":
            selected["overlay-options"] = (overlay_options_yaml,)
    if bootloader and bootloader in BOOTLOADER_CHOICES:
        selected["bootloader"] = (bootloader,)
    return WizardState(selected=selected)


def fields_of(step: Step) -> tuple[str, ...]:
    return STEP_FIELDS[step]
