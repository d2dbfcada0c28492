"""The wizard's pure logic: form state, step order, back navigation, checks, the schematic."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

import pytest

from gateway.ui.state import Step, WizardState
from gateway.ui.strings import EN, LOCALES, Translator, pick_locale
from gateway.ui.wizard import (
    Extension,
    Facts,
    WizardError,
    back,
    cloud_platforms,
    current_step,
    default_version,
    normalize,
    offered_boards,
    offered_versions,
    prefill,
    schematic_document,
    search_extensions,
    steps_for,
    validate,
    version_groups,
)
from services.builder.enums import Arch, Bootloader, Platform
from services.catalog.versions import parse

T = Translator()
VERSIONS = tuple(parse(v) for v in ("1.6.7", "1.7.0", "1.9.6", "1.12.1", "1.13.0-beta.1"))
CATALOG = (
    Extension("siderolabs/gvisor", "ghcr.io/siderolabs/gvisor:20231214.0-v1.12.1", "gVisor runtime"),
    Extension("siderolabs/iscsi-tools", "ghcr.io/siderolabs/iscsi-tools:v0.1.4", "Open-iSCSI tools"),
    Extension("siderolabs/metal-agent", "ghcr.io/siderolabs/metal-agent:v1", "Omni agent"),
)
FACTS = Facts(VERSIONS, parse("1.12.1"), CATALOG)


def state(*pairs: tuple[str, str]) -> WizardState:
    return WizardState.from_pairs(pairs)


def test_form_pairs_split_committed_and_remembered_fields() -> None:
    s = state(
        ("target", "metal"),
        ("selected-target", "cloud"),  # a committed value beats its mirror
        ("selected-arch", "arm64"),
        ("extensions", "-"),
        ("extensions", "siderolabs/gvisor"),
        ("cmdline", ""),
        ("cmdline-set", "1"),
        ("next", "1"),
        ("unknown", "x"),
        ("search", "  gv "),
    )
    assert s.values == {
        "target": ("metal",),
        "extensions": ("-", "siderolabs/gvisor"),
        "cmdline": ("",),
        "cmdline-set": ("1",),
    }
    assert s.selected == {"arch": ("arm64",)}
    assert s.search == "gv"
    assert s.extensions == ("siderolabs/gvisor",)
    assert s.remembered("arch") == "arm64"
    assert s.url() == "/?target=metal&extensions=-&extensions=siderolabs%2Fgvisor&cmdline-set=1&selected-arch=arm64"


def test_text_areas_keep_their_text_but_normalize_line_ends() -> None:
    s = state(("embedded-config", "machine:\r\n  type: worker\r\n"))
    assert s.get("embedded-config") == "machine:\n  type: worker\n"


def test_steps_follow_the_target() -> None:
    assert current_step(WizardState()) is Step.TARGET
    assert current_step(state(("target", "metal"))) is Step.VERSION
    assert current_step(state(("target", "cloud"), ("version", "v1.12.1"))) is Step.CLOUD
    assert current_step(state(("target", "sbc"), ("version", "v1.12.1"))) is Step.SBC
    metal = state(("target", "metal"), ("version", "v1.12.1"))
    assert steps_for(metal) == [
        Step.TARGET,
        Step.VERSION,
        Step.ARCH,
        Step.EXTENSIONS,
        Step.CUSTOMIZATION,
        Step.FINAL,
    ]
    done = state(("target", "metal"), ("version", "v1.12.1"), ("arch", "amd64"), ("extensions", "-"))
    assert current_step(done) is Step.CUSTOMIZATION
    assert current_step(done.with_values(cmdline_set="1")) is Step.FINAL


@pytest.mark.parametrize(
    ("pairs", "arch"),
    [
        ((("target", "sbc"), ("version", "v1.12.1"), ("board", "rpi_generic")), "arm64"),
        ((("target", "cloud"), ("version", "v1.12.1"), ("platform", "hcloud")), "amd64"),
        ((("target", "cloud"), ("version", "v1.12.1"), ("platform", "aws")), None),  # two arches: asked
        ((("target", "metal"), ("version", "v1.12.1")), None),
    ],
)
def test_arch_is_filled_when_there_is_no_choice(pairs: tuple[tuple[str, str], ...], arch: str | None) -> None:
    s = normalize(state(*pairs))
    assert (s.get("arch") or None) == arch
    assert (Step.ARCH in steps_for(s)) is (arch is None)


def test_normalize_drops_fields_of_other_targets() -> None:
    s = normalize(state(("target", "metal"), ("platform", "aws"), ("selected-board", "rock64")))
    assert not s.has("platform")
    assert "board" not in s.selected


def test_back_remembers_the_choices_it_steps_over() -> None:
    s = state(("target", "cloud"), ("version", "v1.12.1"), ("platform", "hcloud"), ("arch", "amd64"))
    assert current_step(s) is Step.EXTENSIONS
    previous = back(s)
    # The arch step is skipped for hcloud, so back goes to the platform step.
    assert current_step(previous) is Step.CLOUD
    assert previous.selected == {"platform": ("hcloud",), "arch": ("amd64",)}
    assert back(WizardState()) == WizardState()


def test_back_remembers_an_unchecked_secureboot_box() -> None:
    s = state(("target", "metal"), ("version", "v1.12.1"), ("arch", "amd64"), ("selected-secureboot", "1"))
    assert "secureboot" not in back(s).selected


def test_versions_newest_first_grouped_and_the_latest_stable_by_default() -> None:
    groups = version_groups(VERSIONS, T)
    assert [(g.label, [v.tag for v in g.versions]) for g in groups] == [
        ("1.13 pre-releases", ["v1.13.0-beta.1"]),
        ("1.12", ["v1.12.1"]),
        ("1.9", ["v1.9.6"]),
        ("1.7", ["v1.7.0"]),
        ("1.6", ["v1.6.7"]),
    ]
    assert default_version(VERSIONS, parse("1.12.1")) == parse("1.12.1")
    assert default_version(VERSIONS, None) == parse("1.12.1")
    assert default_version((parse("1.13.0-beta.1"),), None) == parse("1.13.0-beta.1")
    assert offered_versions("sbc", VERSIONS)[0] == parse("1.7.0")
    assert offered_versions("metal", VERSIONS) == VERSIONS


def test_platforms_and_boards_are_filtered_by_their_minimum_version() -> None:
    old = {p.platform for p in cloud_platforms(parse("1.6.7"))}
    new = {p.platform for p in cloud_platforms(parse("1.14.0-beta.2"))}
    assert Platform.METAL not in old
    assert Platform.AKAMAI not in old and Platform.AKAMAI in new
    assert Platform.ALIBABACLOUD not in {p.platform for p in cloud_platforms(parse("1.14.0-beta.1"))}
    assert Platform.ALIBABACLOUD in new
    assert "rpi_5" not in {b.name for b in offered_boards(parse("1.12.2"))}
    assert "rpi_5" in {b.name for b in offered_boards(parse("1.12.3"))}


def test_search_matches_ref_or_description_and_keeps_selected() -> None:
    assert [e.name for e in search_extensions(CATALOG, "", ())] == ["siderolabs/gvisor", "siderolabs/iscsi-tools"]
    assert [e.name for e in search_extensions(CATALOG, "ISCSI", ())] == ["siderolabs/iscsi-tools"]
    assert [e.name for e in search_extensions(CATALOG, "runtime", ())] == ["siderolabs/gvisor"]
    assert [e.name for e in search_extensions(CATALOG, "v0.1.4", ("siderolabs/gvisor",))] == [
        "siderolabs/gvisor",
        "siderolabs/iscsi-tools",
    ]
    assert CATALOG[0].tag == "20231214.0-v1.12.1"


FULL_METAL = (
    ("target", "metal"),
    ("version", "v1.12.1"),
    ("arch", "amd64"),
    ("secureboot", "1"),
    ("extensions", "-"),
    ("extensions", "siderolabs/iscsi-tools"),
    ("extensions", "siderolabs/gvisor"),
    ("cmdline", " nolapic   -console "),
    ("cmdline-set", "1"),
    ("embedded-config", "machine:\n  type: worker\n"),
    ("bootloader", "sd-boot"),
)


def test_a_complete_walk_validates_into_a_choice_and_schematic() -> None:
    choice = validate(state(*FULL_METAL), FACTS, T)
    assert choice is not None
    assert (choice.platform.platform, choice.arch, choice.secureboot) == (Platform.METAL, Arch.AMD64, True)
    assert choice.bootloader is Bootloader.SD_BOOT
    assert schematic_document(choice) == {
        "customization": {
            "extraKernelArgs": ["nolapic", "-console"],
            "systemExtensions": {"officialExtensions": ["siderolabs/gvisor", "siderolabs/iscsi-tools"]},
            "bootloader": "sd-boot",
            "embeddedMachineConfiguration": "machine:\n  type: worker\n",
        }
    }


def test_sbc_schematic_carries_the_board_overlay_and_its_options() -> None:
    s = normalize(
        state(
            ("target", "sbc"),
            ("version", "v1.12.1"),
            ("board", "nanopi_r4s"),
            ("extensions", "-"),
            ("cmdline-set", "1"),
            ("overlay-options", "configTxtAppend: dtoverlay=foo\n"),
        )
    )
    choice = validate(s, FACTS, T)
    assert choice is not None
    document = schematic_document(choice)
    assert document["overlay"] == {
        "image": "siderolabs/sbc-rockchip",
        "name": "nanopi-r4s",
        "options": {"configTxtAppend": "dtoverlay=foo"},
    }
    assert list(document) == ["overlay", "customization"]
    assert document["customization"] == {}


def test_incomplete_walks_validate_to_none() -> None:
    assert validate(WizardState(), FACTS, T) is None
    assert validate(state(("target", "metal"), ("version", "v1.12.1")), FACTS, T) is None


@pytest.mark.parametrize(
    ("replace", "message"),
    [
        (("target", "tablet"), "unknown hardware type 'tablet'"),
        (("version", "1.11.5"), "version 1.11.5 is not available"),
        (("version", "latest"), "version latest is not available"),
        (("arch", "riscv64"), "architecture 'riscv64' is not offered for this platform"),
        (("extensions", "siderolabs/metal-agent"), "extension 'siderolabs/metal-agent' is not in the catalog"),
        (("bootloader", "lilo"), "unknown bootloader 'lilo'"),
    ],
)
def test_values_no_step_offers_are_refused(replace: tuple[str, str], message: str) -> None:
    pairs = [p for p in FULL_METAL if p[0] != replace[0]] + [replace]
    with pytest.raises(WizardError) as raised:
        validate(state(*pairs), FACTS, T)
    assert raised.value.message.startswith(message)
    assert "\n" not in raised.value.message


def test_secureboot_and_new_fields_follow_the_version_and_platform() -> None:
    aws = [("target", "cloud"), ("version", "v1.12.1"), ("platform", "aws"), ("arch", "amd64"), ("secureboot", "1")]
    with pytest.raises(WizardError, match="SecureBoot is not offered"):
        validate(state(*aws), FACTS, T)
    old = [p for p in FULL_METAL if p[0] not in ("version", "bootloader")] + [("version", "v1.9.6")]
    with pytest.raises(WizardError, match=r"embedded machine configuration needs Talos 1\.12"):
        validate(state(*old), FACTS, T)
    old_sd = [p for p in old if p[0] != "embedded-config"] + [("bootloader", "sd-boot")]
    with pytest.raises(WizardError, match="unknown bootloader 'sd-boot'"):
        validate(state(*old_sd), FACTS, T)


@pytest.mark.parametrize(("text", "message"), [("[1, 2]", "must be a YAML mapping"), ("a: [", "not valid YAML")])
def test_overlay_options_must_be_a_yaml_mapping(text: str, message: str) -> None:
    s = normalize(
        state(
            ("target", "sbc"),
            ("version", "v1.12.1"),
            ("board", "rpi_generic"),
            ("extensions", "-"),
            ("cmdline-set", "1"),
            ("overlay-options", text),
        )
    )
    with pytest.raises(WizardError, match=message):
        validate(s, FACTS, T)


def test_prefill_turns_a_schematic_into_remembered_choices() -> None:
    s = prefill(
        extensions=["siderolabs/gvisor"],
        kernel_args=["nolapic", "-console"],
        embedded_config="",
        overlay_name="nanopi-r4s",
        overlay_options_yaml="a: 1\n",
        bootloader="grub",
    )
    assert s.values == {}
    assert s.selected == {
        "extensions": ("siderolabs/gvisor",),
        "cmdline": ("nolapic -console",),
        "target": ("sbc",),
        "board": ("nanopi_r4s",),
        "overlay-options": ("a: 1\n",),
        "bootloader": ("grub",),
    }
    assert current_step(s) is Step.TARGET
    # The pushed URL carries the same state back (reload, back button).
    assert WizardState.from_pairs(parse_qsl(urlsplit(s.url()).query)) == s


def test_strings_and_locales() -> None:
    assert T("app.progress", current=2, total=7) == "Step 2 of 7"
    assert Translator("xx")("nav.next") == "Next"  # unknown locale: English
    assert set(LOCALES) == {"en"}
    assert all(value.strip() == value and value for value in EN.values())
    assert pick_locale(None, None) == "en"
    assert pick_locale("en", "fr") == "en"
    assert pick_locale("zz", "fr-CH, fr;q=0.9, en;q=0.8") == "en"
    assert pick_locale(None, "de;q=bad") == "en"
