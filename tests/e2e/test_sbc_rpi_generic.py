"""The web UI's default board, `rpi_generic`, built against the demo release (factory spec §3.1, §12).

The demo publishes `siderolabs/sbc-raspberrypi` with the overlay `rpi_generic` (devtools/demo_release,
`model.RPI_GENERIC`), so the schematic the wizard makes for "Single board computer → rpi_generic" resolves,
and its `metal-arm64.raw.xz` carries that overlay's files. The schematic is the one the browser walk in
test_web_ui.py creates: whichever test runs first builds the disk image, the other gets it from the cache.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from devtools.demo_release.model import RPI_GENERIC
from services.mesh.supervisor import Mesh
from tests.e2e.test_boot_initramfs import create_schematic, download
from tests.e2e.test_catalog import get_json
from tests.e2e.test_sbc_overlay import check_overlay_disk
from tests.support.real_tools import require_tools

pytestmark = [pytest.mark.e2e, pytest.mark.registry]

VERSION = "v1.12.1"  # the wizard's preselected latest stable
CONFIG_TXT_APPEND = "dtparam=audio=on"
# What the wizard's final page shows for the board with this overlay option (test_web_ui.py).
RPI_SCHEMATIC = f"""overlay:
  image: siderolabs/sbc-raspberrypi
  name: rpi_generic
  options:
    configTxtAppend: {CONFIG_TXT_APPEND}
customization: {{}}
""".encode()


def test_rpi_generic_is_an_official_overlay(demo_mesh: Mesh) -> None:
    for version in ("v1.9.6", VERSION, "v1.13.0-beta.1"):  # every offered version is ≥ 1.7; no minimum
        status, overlays = get_json(f"{demo_mesh.url}/version/{version}/overlays/official")
        assert status == 200
        assert ("rpi_generic", "siderolabs/sbc-raspberrypi") in [(o["name"], o["image"]) for o in overlays]


def test_rpi_generic_disk_image_carries_the_overlay(demo_mesh: Mesh, tmp_path: Path) -> None:
    require_tools("xz", "sfdisk", "mdir", "mtype", "mcopy")
    sid = create_schematic(demo_mesh, RPI_SCHEMATIC)
    packed = download(f"{demo_mesh.url}/image/{sid}/{VERSION}/metal-arm64.raw.xz", tmp_path / "metal-arm64.raw.xz")
    cmdline = check_overlay_disk(packed, tmp_path, RPI_GENERIC, VERSION, f"{CONFIG_TXT_APPEND}\n")
    assert "console=ttyAMA0,115200 demo.board=1" in cmdline  # get-options without a `console` option
