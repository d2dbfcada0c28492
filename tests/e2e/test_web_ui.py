"""The web UI in a real browser (issue 9): Playwright drives Debian's Chromium against the demo mesh.

One walk through the wizard for bare metal with two extensions and extra kernel arguments; the
schematic ID on the final page must be the one `POST /schematics` gives for the same YAML, every
factory link must answer HEAD with 200 or 206, the ISO must download through the live-progress link,
and the same pages must work with JavaScript off. A screenshot of each step lands in the test's
tmp dir (its path is printed).
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from playwright.sync_api import Browser, Page, expect, sync_playwright

from services.mesh.supervisor import Mesh
from tests.e2e.conftest import http_get
from tests.e2e.test_sbc_rpi_generic import RPI_SCHEMATIC
from tests.support.real_tools import require_tools

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
KERNEL_ARGS = "nolapic talos.demo=web-ui"
STEP_TIMEOUT_MS = 180_000  # the final step creates the schematic and lists talosctl (a cold pull)
BUILD_TIMEOUT_MS = 600_000  # a cold ISO build on a 2-CPU machine


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    require_tools(CHROMIUM)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


class Walk:
    """A page plus numbered screenshots and step timings."""

    def __init__(self, page: Page, shots: Path) -> None:
        self.page = page
        self.shots = shots
        self.count = 0
        self.started = time.monotonic()
        self.timings: list[tuple[str, float]] = []

    def expect_step(self, title: str) -> None:
        expect(self.page.locator("#step-title")).to_have_text(title, timeout=STEP_TIMEOUT_MS)
        self.count += 1
        name = f"{self.count:02d}-{title.lower().replace(' ', '-')}.png"
        self.page.screenshot(path=self.shots / name, full_page=True)
        self.timings.append((title, round(time.monotonic() - self.started, 2)))

    def next(self) -> None:
        self.page.get_by_role("button", name="Next").click()


def head(url: str) -> int:
    request = urllib.request.Request(url, method="HEAD")
    with urllib.request.urlopen(request, timeout=900) as reply:  # HEAD of a cold asset builds it
        return int(reply.status)


def post_schematic(base: str, body: str) -> str:
    request = urllib.request.Request(f"{base}/schematics", data=body.encode(), method="POST")
    with urllib.request.urlopen(request, timeout=60) as reply:
        assert reply.status == 201
        return str(json.load(reply)["id"])


def test_wizard_to_downloaded_iso(demo_mesh: Mesh, browser: Browser, tmp_path: Path) -> None:
    base = demo_mesh.url
    # The test mesh's external URL is its own listener (tests/support/mesh.py): links lead right back.
    external = demo_mesh.config.http.external_url.rstrip("/")
    assert external == base
    shots = tmp_path / "screenshots"
    shots.mkdir()
    print(f"screenshots: {shots}")
    context = browser.new_context(base_url=base, accept_downloads=True, viewport={"width": 1100, "height": 900})
    page = context.new_page()
    page.set_default_timeout(STEP_TIMEOUT_MS)
    walk = Walk(page, shots)

    page.goto("/")
    walk.expect_step("Hardware type")
    expect(page.get_by_label("Bare-metal machine")).to_be_checked()
    walk.next()

    walk.expect_step("Talos Linux version")
    # 1.11.5 is configured as broken; newest first, the latest stable preselected.
    options = page.locator("#version option").all_inner_texts()
    assert options == ["v1.13.0-beta.1", "v1.12.1 (latest stable)", "v1.9.6"]
    expect(page.locator("#version")).to_have_value("v1.12.1")
    walk.next()

    walk.expect_step("Machine architecture")
    expect(page.get_by_label("amd64 (x86-64: Intel, AMD)")).to_be_checked()
    expect(page.get_by_label("SecureBoot")).not_to_be_checked()
    walk.next()

    walk.expect_step("System extensions")
    search = page.get_by_label("Search extensions")
    search.fill("out-of-tree")  # live search: the list is replaced as one types
    expect(page.locator("#extension-list li")).to_have_count(1)
    page.get_by_label("siderolabs/demo-kmod").check()
    search.fill("demo command")
    expect(page.locator("#extension-list li")).to_have_count(2)  # the checked one stays listed
    page.get_by_label("siderolabs/demo-tools").check()
    page.screenshot(path=shots / f"{walk.count:02d}b-extensions-selected.png", full_page=True)
    walk.next()

    walk.expect_step("Customization")
    page.get_by_label("Extra kernel command line arguments").fill(KERNEL_ARGS)
    expect(page.get_by_label("Automatic (the Talos default)")).to_be_checked()
    walk.next()

    walk.expect_step("Your schematic is ready")
    final_url = page.url
    assert "cmdline=nolapic" in final_url  # htmx pushed the state into the address bar
    schematic_id = page.locator("#schematic-id").inner_text().strip()
    shown_yaml = page.locator("#schematic-yaml").inner_text()
    assert yaml.safe_load(shown_yaml) == {
        "customization": {
            "extraKernelArgs": KERNEL_ARGS.split(),
            "systemExtensions": {"officialExtensions": ["siderolabs/demo-kmod", "siderolabs/demo-tools"]},
        }
    }
    assert post_schematic(base, shown_yaml) == schematic_id
    own = "customization:\n  extraKernelArgs: [nolapic, talos.demo=web-ui]\n  systemExtensions:\n"
    own += "    officialExtensions: [siderolabs/demo-kmod, siderolabs/demo-tools]\n"
    assert post_schematic(base, own) == schematic_id

    # Every link to the factory answers HEAD with 200/206.
    hrefs = page.locator("main a[href]").evaluate_all("links => links.map(a => a.href)")
    factory = [h for h in hrefs if h.startswith(external)]
    paths = {h.rsplit("/", 1)[1] for h in factory if "/image/" in h}
    assert paths == {
        "metal-amd64.iso",
        "metal-amd64.raw.zst",
        "metal-amd64.qcow2",
        "kernel-amd64",
        "cmdline-metal-amd64",
        "initramfs-amd64.xz",
        "metal-amd64-uki.efi",
    }
    assert sum("/talosctl/v1.12.1/" in h for h in factory) == 4
    installer = page.locator("#installer-ref").inner_text().strip()
    assert installer.endswith(f"/metal-installer/{schematic_id}:v1.12.1")
    pxe = page.locator("#pxe-url").inner_text().strip()
    assert pxe.endswith(f"/pxe/{schematic_id}/v1.12.1/metal-amd64")

    # The ISO through the live-progress link: progress shows, then the browser downloads it.
    iso = page.locator('a[data-asset="metal-amd64.iso"]')
    started = time.monotonic()
    with page.expect_download(timeout=BUILD_TIMEOUT_MS) as download_info:
        iso.click()
        expect(iso.locator("xpath=..").locator(".build-status")).to_be_visible()
        page.screenshot(path=shots / f"{walk.count:02d}b-iso-progress.png", full_page=True)
    download = download_info.value
    saved = tmp_path / download.suggested_filename
    download.save_as(saved)
    iso_seconds = round(time.monotonic() - started, 1)
    assert download.suggested_filename == "metal-amd64.iso"
    assert saved.stat().st_size > 1024 * 1024
    page.screenshot(path=shots / f"{walk.count:02d}c-iso-downloaded.png", full_page=True)

    head_started = time.monotonic()
    statuses = {h: head(h) for h in factory}
    assert all(status in (200, 206) for status in statuses.values()), statuses
    head_seconds = round(time.monotonic() - head_started, 1)
    status, _, script = http_get(base + pxe[pxe.index("/pxe/") :])
    assert status == 200
    assert script.startswith(b"#!ipxe") and b"nolapic talos.demo=web-ui" in script

    # The browser's back button returns to the previous step, and a reload keeps it (the URL holds the
    # state as it was when that step was shown).
    page.go_back()
    expect(page.locator("#step-title")).to_have_text("Customization")
    page.reload()
    expect(page.locator("#step-title")).to_have_text("Customization")
    page.go_forward()
    expect(page.locator("#step-title")).to_have_text("Your schematic is ready")
    expect(page.locator("#schematic-id")).to_have_text(schematic_id)
    # The wizard's own Back button keeps what was typed.
    page.get_by_role("button", name="Back").click()
    expect(page.locator("#step-title")).to_have_text("Customization")
    expect(page.get_by_label("Extra kernel command line arguments")).to_have_value(KERNEL_ARGS)
    walk.next()
    expect(page.locator("#schematic-id")).to_have_text(schematic_id)

    # `?schematic-id=` pre-fills a new walk with this schematic's choices.
    page.goto(f"/?schematic-id={schematic_id}")
    walk.expect_step("Hardware type")
    for _ in range(3):
        walk.next()
    walk.expect_step("System extensions")
    expect(page.get_by_label("siderolabs/demo-kmod")).to_be_checked()
    expect(page.get_by_label("siderolabs/demo-tools")).to_be_checked()
    context.close()

    # Without JavaScript: steps are plain form posts (303 to the step URL), links plain links.
    plain = browser.new_context(base_url=base, java_script_enabled=False, accept_downloads=True)
    nojs = plain.new_page()
    nojs.set_default_timeout(STEP_TIMEOUT_MS)
    nojs.goto("/")
    nojs.get_by_role("button", name="Next").click()
    expect(nojs.locator("#step-title")).to_have_text("Talos Linux version")
    assert "target=metal" in nojs.url
    nojs.goto(final_url.removeprefix(base))
    expect(nojs.locator("#schematic-id")).to_have_text(schematic_id)
    nojs.screenshot(path=shots / "99-final-without-javascript.png", full_page=True)
    with nojs.expect_download() as plain_download:
        nojs.locator('a[data-asset="metal-amd64.iso"]').click()
    assert plain_download.value.suggested_filename == "metal-amd64.iso"
    plain.close()

    # Readable on a phone: no sideways scrolling on a narrow screen.
    phone = browser.new_context(base_url=base, viewport={"width": 390, "height": 844}, is_mobile=True)
    small = phone.new_page()
    small.set_default_timeout(STEP_TIMEOUT_MS)
    for url in ("/", final_url.removeprefix(base)):
        small.goto(url)
        expect(small.locator("#step-title")).to_be_visible()
        assert small.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), url
    small.screenshot(path=shots / "98-final-on-a-phone.png", full_page=True)
    phone.close()
    print(f"timings: steps {walk.timings}, iso click→download {iso_seconds}s, HEAD of all links {head_seconds}s")


def test_cloud_and_board_walks(demo_mesh: Mesh, browser: Browser, tmp_path: Path) -> None:
    """The other two targets to their final page: the links follow the platform. The board's links all
    answer, since the demo publishes its overlay (`rpi_generic` in `siderolabs/sbc-raspberrypi`)."""
    base = demo_mesh.url
    external = demo_mesh.config.http.external_url.rstrip("/")
    context = browser.new_context(base_url=base, viewport={"width": 1100, "height": 900})
    page = context.new_page()
    page.set_default_timeout(STEP_TIMEOUT_MS)
    walk = Walk(page, tmp_path)

    page.goto("/")
    page.get_by_label("Cloud server").check()
    walk.next()
    walk.expect_step("Talos Linux version")
    walk.next()
    walk.expect_step("Cloud platform")
    expect(page.get_by_label("Amazon Web Services (AWS)")).to_be_checked()
    page.get_by_label("Hetzner").check()  # amd64 only: the architecture step is skipped
    walk.next()
    walk.expect_step("System extensions")
    walk.next()
    walk.expect_step("Customization")
    walk.next()
    walk.expect_step("Your schematic is ready")
    assert [a.strip() for a in page.locator("a[data-asset]").all_inner_texts()] == ["Disk image hcloud-amd64.raw.xz"]
    assert page.locator("#pxe-url").count() == 0
    expect(page.locator("#installer-ref")).to_contain_text("/hcloud-installer/")

    page.goto("/")
    page.get_by_label("Single board computer").check()
    walk.next()
    walk.expect_step("Talos Linux version")
    assert "v1.9.6" in page.locator("#version option").all_inner_texts()  # ≥ 1.7: overlays exist
    walk.next()
    walk.expect_step("Single board computer")
    expect(page.get_by_label("rpi_generic")).to_be_checked()
    assert page.get_by_label("rpi_5").count() == 0  # rpi_5 needs Talos 1.12.3
    walk.next()
    walk.expect_step("System extensions")
    walk.next()
    walk.expect_step("Customization")
    page.get_by_label("Overlay options").fill("configTxtAppend: dtparam=audio=on\n")
    walk.next()
    walk.expect_step("Your schematic is ready")
    assert yaml.safe_load(page.locator("#schematic-yaml").inner_text()) == {
        "overlay": {
            "image": "siderolabs/sbc-raspberrypi",
            "name": "rpi_generic",
            "options": {"configTxtAppend": "dtparam=audio=on"},
        },
        "customization": {},
    }
    assert page.locator("a[data-asset]").get_attribute("data-asset") == "metal-arm64.raw.xz"
    schematic_id = page.locator("#schematic-id").inner_text().strip()
    assert post_schematic(base, RPI_SCHEMATIC.decode()) == schematic_id  # test_sbc_rpi_generic.py's schematic
    # Every factory link answers HEAD: the disk image's HEAD builds it (~30 s cold on 2 CPUs), unless
    # test_sbc_rpi_generic.py, which checks its content, already has.
    hrefs = page.locator("main a[href]").evaluate_all("links => links.map(a => a.href)")
    factory = [h for h in hrefs if h.startswith(external)]
    assert [h.rsplit("/", 1)[1] for h in factory if "/image/" in h] == ["metal-arm64.raw.xz"]
    assert sum("/talosctl/v1.12.1/" in h for h in factory) == 4
    head_started = time.monotonic()
    statuses = {h: head(h) for h in factory}
    assert all(status in (200, 206) for status in statuses.values()), statuses
    print(f"board walk: HEAD of {len(factory)} links {time.monotonic() - head_started:.1f}s")

    # A bad value that no step offers: a one-line 400, shown on the page.
    page.goto("/?target=metal&version=v1.99.0")
    assert "version v1.99.0 is not available" in page.content()
    context.close()
