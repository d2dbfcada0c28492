"""ID and normalization vectors from spec §6.3 (Go `schematic_test.go`, `profile_test.go`)."""

from __future__ import annotations

import pytest

from services.schematic.canonical import canonical_yaml
from services.schematic.ids import schematic_id
from services.schematic.model import (
    Bootloader,
    Customization,
    DiskImageCustomization,
    MetaValue,
    Overlay,
    Schematic,
    SecureBootCustomization,
    SystemExtensions,
)
from services.schematic.parsing import parse_schematic

EMPTY_ID = "376567988ad370138ad8b2698212367b8edcb69b5fd68c80be1f2ec7d603b4ba"
ARGS_ID = "9cba8e32753f91a16c1837ab8abf356af021706ef284aef07380780177d9a06c"
META_ID = "d308a2a5ee2277bed5fbaa104fcbc8d59122abfa737df987a95b4ca763459a7f"
OVERLAY_ID = "ee21ef4a5ef808a9b7484cc0dda0f25075021691c8c09a276591eedb638ea1f9"

CANONICAL_VECTORS = [
    ("customization: {}\n", EMPTY_ID),
    ("customization:\n    extraKernelArgs:\n        - noapic\n        - nolapic\n", ARGS_ID),
    ("customization:\n    meta:\n        - key: 10\n          value: foo\n", META_ID),
    (
        "customization:\n    secureboot:\n        includeWellKnownCertificates: true\n",
        "fa8e05f142a851d3ee568eb0a8e5841eaf6b0ebc8df9a63df16ac5ed2c04f3e6",
    ),
    (
        "customization:\n    diskImage:\n        sectorSize: 4096\n",
        "92833e9ddd9bb9e11b2464fa5525429f01866306d52ebd882ee08d7918f6d1ea",
    ),
    ("overlay:\n    image: siderolabs/sbc-raspberrypi\n    name: rpi_generic\ncustomization: {}\n", OVERLAY_ID),
    (
        "customization:\n    embeddedMachineConfiguration: |-\n        apiVersion: v1alpha1\n"
        "        kind: HostnameConfig\n        hostname: worker-33\n",
        "02f29f9a702fceec4fc2e2e51314d63710fc1b192ebb1629ac12301949d49c8c",
    ),
]


@pytest.mark.parametrize(("text", "expected_id"), CANONICAL_VECTORS)
def test_canonical_vectors(text: str, expected_id: str) -> None:
    schematic = parse_schematic(text.encode())
    assert canonical_yaml(schematic) == text
    assert schematic_id(schematic) == expected_id


def _extensions(*names: str) -> SystemExtensions:
    return SystemExtensions(tuple(f"siderolabs/{name}" for name in names))


MODEL_VECTORS = [
    (
        Schematic(
            customization=Customization(
                extra_kernel_args=("noapic", "nolapic"),
                meta=(MetaValue(10, "foo"),),
                system_extensions=_extensions("amd-ucode", "intel-ucode"),
            )
        ),
        "6ba13d510dcc57f233b9b498d34a3c919c1abdd5675b46ad53cf4f2e66362f82",
    ),
    (
        Schematic(
            overlay=Overlay(image="ghcr.io/siderolabs/sbc-raspberrypi:v0.1.0", name="rpi_generic"),
            customization=Customization(
                extra_kernel_args=("noapic", "nolapic"),
                system_extensions=_extensions("amd-ucode", "intel-ucode"),
            ),
        ),
        "1da25204d18e6db95cb65ce2e38424b2ad94b2519a53aef34e45f07cc73ca5e8",
    ),
    (
        Schematic(
            customization=Customization(
                system_extensions=_extensions(
                    "nvidia-container-toolkit",
                    "nvidia-open-gpu-kernel-modules",
                    "nonfree-kmod-nvidia",
                    "nvidia-fabricmanager",
                    "i915-ucode",
                    "amdgpu-firmware",
                )
            )
        ),
        "42c5a897579913a97ad7edc56c0d858bc4dd8639951e02b084edbb2e190a7898",
    ),
    (Schematic(), EMPTY_ID),
]


@pytest.mark.parametrize(("schematic", "expected_id"), MODEL_VECTORS)
def test_model_vectors(schematic: Schematic, expected_id: str) -> None:
    assert schematic_id(schematic) == expected_id


NORMALIZATION_VECTORS = [
    ("{}", EMPTY_ID),
    ("customization: {}", EMPTY_ID),
    ('customization: {"extraKernelArgs": []}', EMPTY_ID),
    ('{"customization": {"systemExtensions": {}}}', EMPTY_ID),
    ('{"customization": {"extraKernelArgs": ["noapic", "nolapic"], "systemExtensions": {}}}', ARGS_ID),
    (
        '{"customization": {"meta": [{"key": 10, "value": "foo"}], "extraKernelArgs": [], "systemExtensions": {}}}',
        META_ID,
    ),
    ('{"overlay": {"image": "siderolabs/sbc-raspberrypi", "name": "rpi_generic"}}', OVERLAY_ID),
    (
        '{"overlay": {"image": "siderolabs/sbc-raspberrypi", "name": "rpi_generic"}, "customization": {}}',
        OVERLAY_ID,
    ),
]


@pytest.mark.parametrize(("body", "expected_id"), NORMALIZATION_VECTORS)
def test_input_normalization(body: str, expected_id: str) -> None:
    assert schematic_id(parse_schematic(body.encode())) == expected_id


# The schematics posted by the Go integration tests (`internal/integration/schematic_test.go`).
INTEGRATION_SCHEMATICS = [
    Schematic(),
    Schematic(customization=Customization(extra_kernel_args=("nolapic", "nomodeset"))),
    Schematic(customization=Customization(system_extensions=_extensions("amd-ucode", "gvisor", "gasket-driver"))),
    Schematic(customization=Customization(meta=(MetaValue(0xA, '{"externalIPs":["1.2.3.4"]}'),))),
    Schematic(overlay=Overlay(image="siderolabs/sbc-raspberrypi", name="rpi_generic")),
    Schematic(customization=Customization(secureboot=SecureBootCustomization(include_well_known_certificates=True))),
    Schematic(customization=Customization(bootloader=Bootloader.GRUB)),
    Schematic(customization=Customization(bootloader=Bootloader.SD_BOOT)),
    Schematic(
        customization=Customization(
            embedded_machine_configuration=(
                "apiVersion: v1alpha1/nkind: HostnameConfig/nhostname: my-custom-hostname/nauto: off"
            )
        )
    ),
    Schematic(customization=Customization(disk_image=DiskImageCustomization(sector_size=4096))),
    Schematic(customization=Customization(system_extensions=SystemExtensions(("extension-testing/my-extension",)))),
]


@pytest.mark.parametrize("schematic", INTEGRATION_SCHEMATICS)
def test_integration_schematics_round_trip(schematic: Schematic) -> None:
    text = canonical_yaml(schematic)
    parsed = parse_schematic(text.encode())
    assert parsed == schematic
    assert canonical_yaml(parsed) == text


def test_integration_schematic_texts() -> None:
    # Spot checks of the quoting the Go emitter picks for these values.
    meta = canonical_yaml(INTEGRATION_SCHEMATICS[3])
    assert meta == 'customization:\n    meta:\n        - key: 10\n          value: \'{"externalIPs":["1.2.3.4"]}\'\n'
    config = canonical_yaml(INTEGRATION_SCHEMATICS[8])
    assert config == (
        "customization:\n    embeddedMachineConfiguration: 'apiVersion: v1alpha1/nkind: HostnameConfig"
        "/nhostname: my-custom-hostname/nauto: off'\n"
    )
    assert canonical_yaml(INTEGRATION_SCHEMATICS[6]) == "customization:\n    bootloader: grub\n"
