"""An SBC schematic (the demo overlay + options) through the gateway: disk image and installer image (issue 7).

`metal-arm64.raw.xz` must carry what the overlay's installer did with the schematic's options (imager spec
§10): u-boot at its offset inside the GPT's skipped LBAs, DTB and config.txt (with `configTxtAppend`) on the
ESP, and the `get-options` kernel arguments in the UKI's command line. The installer image pulled through
the registry frontend must hold the overlay layer (imager spec §9 step 5).
"""

from __future__ import annotations

import json
import re
import subprocess
import tarfile
from pathlib import Path

import pytest
import yaml

from devtools.demo_release import overlay as demo
from devtools.demo_release.model import DEMO_BOARD, DemoOverlay
from services.builder.steps.pe import read_pe, section_data
from services.mesh.supervisor import Mesh
from tests.e2e.test_boot_initramfs import create_schematic, download
from tests.e2e.test_registry_frontend import skopeo
from tests.support.real_tools import require_tools

pytestmark = [pytest.mark.e2e, pytest.mark.registry]

SBC_SCHEMATIC = b"""overlay:
  image: siderolabs/sbc-demo
  name: demo_board
  options:
    console: ttyS2,1500000
    configTxtAppend: dtoverlay=demo-fan
customization:
  extraKernelArgs:
    - demo.marker=sbc
"""
ESP_OFFSET = 4096 * 512  # EFI moves from LBA 2048 to 4096 behind the overlay's 2048 skipped LBAs


def unxz_sparse(packed: Path, raw: Path) -> Path:
    """`xz -d` into a regular file writes runs of zeros as holes, so a 2-4 GiB image stays small on disk."""
    assert packed.suffix == ".xz"
    subprocess.run(["xz", "-d", "-k", "-f", "-T1", str(packed)], capture_output=True, timeout=600, check=True)
    packed.with_suffix("").rename(raw)
    return raw


@pytest.fixture(scope="module")
def sbc(demo_mesh: Mesh, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path, Path]:
    require_tools("xz", "sfdisk", "mdir", "mtype", "mcopy", "skopeo")
    sid = create_schematic(demo_mesh, SBC_SCHEMATIC)
    work = tmp_path_factory.mktemp("sbc")
    packed = download(f"{demo_mesh.url}/image/{sid}/v1.12.1/metal-arm64.raw.xz", work / "metal-arm64.raw.xz")
    return sid, packed, work


def check_overlay_disk(packed: Path, work: Path, overlay: DemoOverlay, version: str, config_txt_append: str) -> str:
    """`packed` (an SBC `metal-arm64.raw.xz`) holds what `overlay`'s installer wrote (imager spec §10): u-boot in
    the skipped LBAs; on the ESP the overlay's DTB, u-boot.bin and config.txt ending in `config_txt_append`.
    Returns the UKI's command line (`get-options` kernel args included)."""
    tested = subprocess.run(["xz", "-t", str(packed)], capture_output=True, timeout=300)
    assert tested.returncode == 0, tested.stderr
    raw = unxz_sparse(packed, work / "metal-arm64.raw")

    dump = subprocess.run(["sfdisk", "-d", str(raw)], capture_output=True, text=True, check=True).stdout
    assert "first-lba: 4096" in dump
    assert re.findall(r'start=\s*(\d+),.*name="(\w+)"', dump) == [("4096", "EFI"), ("4306944", "META")]

    with raw.open("rb") as f:
        f.seek(demo.UBOOT_OFFSET)
        assert f.read(len(demo.UBOOT)) == demo.UBOOT

    esp = f"{raw}@@{ESP_OFFSET}"
    mtype = subprocess.run(["mtype", "-i", esp, "::/config.txt"], capture_output=True, text=True, check=True)
    assert mtype.stdout == demo.config_txt(overlay) + config_txt_append
    files = subprocess.run(["mdir", "-/", "-b", "-i", esp, "::"], capture_output=True, text=True, check=True)
    assert {"::/dtb/demo/board.dtb", "::/u-boot.bin", "::/EFI/boot/BOOTAA64.efi"} <= set(files.stdout.split())
    dtb = work / "board.dtb"
    subprocess.run(["mcopy", "-i", esp, "::/dtb/demo/board.dtb", str(dtb)], check=True)
    assert dtb.read_bytes() == demo.dtb(overlay)  # names the overlay: the right overlay image was used

    uki = work / "uki.efi"
    subprocess.run(["mcopy", "-i", esp, f"::/EFI/Linux/Talos-{version}.efi", str(uki)], check=True)
    return section_data(uki, read_pe(uki).section(".cmdline")).decode()


def test_sbc_disk_image_carries_the_overlay(sbc: tuple[str, Path, Path]) -> None:
    _, packed, work = sbc
    cmdline = check_overlay_disk(packed, work, DEMO_BOARD, "v1.12.1", "dtoverlay=demo-fan\n")
    # get-options' kernel args replace the platform's console (setAll), the schematic's args come last
    assert "console=ttyS2,1500000 demo.board=1" in cmdline and cmdline.endswith("demo.marker=sbc")
    assert "console=ttyAMA0" not in cmdline


def test_sbc_installer_image_has_the_overlay_layer(demo_mesh: Mesh, sbc: tuple[str, Path, Path]) -> None:
    sid, _, work = sbc
    factory = demo_mesh.url.removeprefix("http://")
    image = f"docker://{factory}/metal-installer/{sid}:v1.12.1"
    layout = work / "oci"
    copied = skopeo("copy", "--override-arch", "arm64", "--src-tls-verify=false", image, f"oci:{layout}:sbc")
    assert copied.returncode == 0, copied.stderr
    index = json.loads((layout / "index.json").read_text())
    blobs = layout / "blobs" / "sha256"
    manifest = json.loads((blobs / index["manifests"][0]["digest"].removeprefix("sha256:")).read_bytes())
    assert len(manifest["layers"]) == 3  # base, artifacts, overlay (factory spec §9.3)
    with tarfile.open(blobs / manifest["layers"][-1]["digest"].removeprefix("sha256:")) as layer:
        names = set(layer.getnames())
        assert {
            "overlay/artifacts/arm64/u-boot/demo_board/u-boot.bin",
            "overlay/artifacts/arm64/dtb/demo/board.dtb",
            "overlay/installers/default",
            "overlay/extra-options",
        } <= names
        installer = layer.getmember("overlay/installers/default")
        assert installer.mode & 0o111
        extra = layer.extractfile("overlay/extra-options")
        assert extra is not None
        assert yaml.safe_load(extra.read()) == {"configTxtAppend": "dtoverlay=demo-fan", "console": "ttyS2,1500000"}
        uboot = layer.extractfile("overlay/artifacts/arm64/u-boot/demo_board/u-boot.bin")
        assert uboot is not None and uboot.read() == demo.UBOOT
