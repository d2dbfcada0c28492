"""The demo upstream release (devtools.demo_release) against a real registry, and booted in qemu.

One session-scoped publish feeds every test. The cache directory is shared with the CLI
(`IMAGE_FACTORY_DEMO_CACHE`, else ~/.cache/image-factory-demo), so only the very first run downloads
the Debian packages and compresses the layers.
"""

from __future__ import annotations

import asyncio
import gzip
import io
import json
import re
import stat
import tarfile
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from devtools.demo_release import DemoRelease, PublishedImage
from devtools.demo_release import overlay as demo_overlay
from devtools.demo_release.boot import BootReport, boot
from devtools.demo_release.cache import CacheDir
from devtools.demo_release.compress import squashfs_from_tar, zstd
from devtools.demo_release.cpio import Member, newc_archive, read_newc, with_parents
from devtools.demo_release.initramfs import compress_initramfs
from devtools.demo_release.kernel import KernelAssets
from devtools.demo_release.layers import Entry, tar_bytes
from devtools.demo_release.model import OVERLAYS, RPI_GENERIC, VERSIONS, DemoOverlay, TalosVersion
from services.shared.oci import RegistryClient, signature_tag
from services.shared.tools import run_tool
from services.signer.cosign import verify_cosign
from services.signer.keys import CosignKey
from tests.support.cosign_cli import cosign_verify
from tests.support.demo import publish_demo
from tests.support.real_tools import require_tools
from tests.support.registry import start_registry

pytestmark = pytest.mark.registry

BOOT_VERSION = "v1.12.1"
SCHEMATIC_ID = "376567988ad370138ad8b2698212367b8edcb69b5fd68c80be1f2ec7d603b4ba"
_CATALOG_LINE = re.compile(
    r"^(?P<host>[^/]+)/(?P<repo>siderolabs/[a-z0-9-]+):(?P<tag>[\w.-]+)@(?P<digest>sha256:[0-9a-f]{64})$"
)


def client_for(release: DemoRelease) -> RegistryClient:
    return RegistryClient(release.registry, insecure=True)


@dataclass
class LayerFiles:
    """The members of an image's one layer and the bytes of its regular files."""

    members: dict[str, tarfile.TarInfo]
    contents: dict[str, bytes]

    def __getitem__(self, name: str) -> bytes:
        return self.contents[name]

    def __contains__(self, name: str) -> bool:
        return name in self.members

    def names(self) -> set[str]:
        return set(self.members)


async def layer_files(client: RegistryClient, repo: str, ref: str, arch: str = "amd64") -> LayerFiles:
    manifest = await client.resolve_platform(repo, ref, "linux", arch)
    (layer,) = manifest.layers()
    blob = await client.get_blob(repo, layer.digest, max_size=256 << 20)
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(blob))) as tar:
        members = {m.name: m for m in tar.getmembers()}
        contents = {m.name: tar.extractfile(m).read() for m in members.values() if m.isfile()}  # type: ignore[union-attr]
    return LayerFiles(members, contents)


async def assert_signed(client: RegistryClient, release: DemoRelease, image: PublishedImage) -> None:
    """The legacy cosign tag of `image` holds a signature by the demo key for `<registry>/<repository>`."""
    sig = await client.get_manifest(image.repository, signature_tag(image.digest))
    (layer,) = sig.layers()
    payload = await client.get_blob(image.repository, layer.digest)
    signature = layer.annotations["dev.cosignproject.cosign/signature"]
    signed = verify_cosign(release.public_key_pem, payload, signature, expected_digest=image.digest)
    assert signed.reference == f"{release.registry}/{image.repository}"


# --- registry content ------------------------------------------------------------------------


async def test_imager_tags_and_signatures(demo_release: DemoRelease) -> None:
    async with client_for(demo_release) as client:
        assert set(VERSIONS) <= set(await client.list_tags("siderolabs/imager"))
        for image in demo_release.images:
            await assert_signed(client, demo_release, image)
            index = await client.get_manifest(image.repository, image.tag)
            assert index.digest == image.digest
            assert {str(c.platform) for c in index.manifests()} == {"linux/amd64", "linux/arm64"}


def test_real_cosign_accepts_the_signatures(demo_release: DemoRelease, tmp_path: Path) -> None:
    public_key = tmp_path / "cosign.pub"
    public_key.write_bytes(demo_release.public_key_pem)
    images = (("imager", BOOT_VERSION), ("extensions", "v1.9.6"), ("sbc-demo", "v0.1.0"), ("sbc-raspberrypi", "v0.1.0"))
    for name, tag in images:
        result = cosign_verify(f"{demo_release.registry}/siderolabs/{name}:{tag}", public_key, tmp_path)
        assert result.returncode == 0, result.stderr
        assert demo_release.image(name, tag).digest in result.stdout


async def test_extension_catalogs_resolve(demo_release: DemoRelease) -> None:
    async with client_for(demo_release) as client:
        for version in VERSIONS:
            files = await layer_files(client, "siderolabs/extensions", version)
            lines = files["image-digests"].decode().splitlines()
            assert len(lines) == 5
            for line in lines:
                match = _CATALOG_LINE.match(line)
                assert match, line
                assert match["host"] == demo_release.registry and match["tag"].endswith(f"-{version}")
                assert await client.head_manifest(match["repo"], match["digest"]) is not None
            descriptions = yaml.safe_load(files["descriptions.yaml"])
            assert set(descriptions) == set(lines)
            legacy = next(e for e in demo_release.extensions[version] if e.name == "demo-legacy")
            ext = await layer_files(client, "siderolabs/demo-legacy", legacy.tag)
            manifest = yaml.safe_load(ext["manifest.yaml"])
            assert manifest["metadata"]["compatibility"]["talos"]["version"] == "< v1.12.0"
            assert {n.split("/")[0] for n in ext.names()} == {"manifest.yaml", "rootfs"}
            # Module and firmware paths follow the version (imager spec §2.5: /usr/lib from 1.10).
            lib = TalosVersion(version).lib_prefix
            by_name = {e.name: e for e in demo_release.extensions[version]}
            kmod = await layer_files(client, "siderolabs/demo-kmod", by_name["demo-kmod"].tag)
            assert f"rootfs/{lib}/modules/{demo_release.kernel_version}/extras/dummy.ko" in kmod
            ucode = await layer_files(client, "siderolabs/amd-ucode", by_name["amd-ucode"].tag)
            assert f"rootfs/{lib}/firmware/amd-ucode/microcode_amd_fam17h.bin" in ucode


async def test_imager_layer_carries_both_arches(demo_release: DemoRelease) -> None:
    async with client_for(demo_release) as client:
        for version in VERSIONS:
            files = await layer_files(client, "siderolabs/imager", version)
            for arch in ("amd64", "arm64"):
                for name in ("vmlinuz", "initramfs.xz", "systemd-boot.efi", "systemd-stub.efi"):
                    assert files.members[f"usr/install/{arch}/{name}"].isfile()
            assert files["usr/install/amd64/vmlinuz"][0x202:0x206] == b"HdrS"  # a real bzImage
            assert files["usr/install/amd64/initramfs.xz"][:4] == bytes.fromhex("28b52ffd")  # zstd (≥ 1.8)
            assert files["usr/install/amd64/systemd-stub.efi"][:2] == b"MZ"
            assert {m.uid for m in files.members.values()} == {0} and len(
                {m.mtime for m in files.members.values()}
            ) == 1


async def test_installers_and_talosctl(demo_release: DemoRelease) -> None:
    async with client_for(demo_release) as client:
        base = await client.resolve_platform("siderolabs/installer-base", "v1.12.1", "linux", "arm64")
        config = json.loads(await client.get_blob("siderolabs/installer-base", base.config().digest))
        assert config["config"]["Entrypoint"] == ["/bin/installer"]
        assert {"TARGETARCH=arm64", "VERSION=v1.12.1"} <= set(config["config"]["Env"])
        assert config["config"]["Labels"]["alpha.talos.dev/version"] == "v1.12.1"
        assert "usr/bin/installer" in await layer_files(client, "siderolabs/installer-base", "v1.12.1")
        assert "bin/installer" in await layer_files(client, "siderolabs/installer", "v1.9.6")
        assert "siderolabs/installer-base:v1.9.6" not in demo_release.digests()
        talosctl = await layer_files(client, "siderolabs/talosctl-all", "v1.13.0-beta.1")
        assert {n for n in talosctl.names() if n.startswith("talosctl-")} == {
            "talosctl-linux-amd64", "talosctl-linux-arm64", "talosctl-darwin-arm64", "talosctl-windows-amd64.exe",
        }  # fmt: skip


async def test_overlays_catalog_lists_every_overlay_signed(demo_release: DemoRelease) -> None:
    """`rpi_generic` (the web UI's default board, factory spec §3.1) is in the demo as in the real release."""
    published = {o: demo_release.image(o.image, o.tag) for o in OVERLAYS}
    assert published[RPI_GENERIC].repository == "siderolabs/sbc-raspberrypi"
    async with client_for(demo_release) as client:
        for version in VERSIONS:  # all ≥ 1.7, so all have an overlays catalog (factory spec §7.4)
            overlays = yaml.safe_load((await layer_files(client, "siderolabs/overlays", version))["overlays.yaml"])
            assert overlays == {
                "overlays": [
                    {
                        "name": o.name,
                        "image": f"{demo_release.registry}/siderolabs/{o.image}:{o.tag}",
                        "digest": published[o].digest,
                    }
                    for o in OVERLAYS
                ]
            }
        for image in published.values():
            await assert_signed(client, demo_release, image)


@pytest.mark.parametrize("overlay", OVERLAYS, ids=lambda o: o.name)
async def test_overlay_installer_runs_on_the_host(
    demo_release: DemoRelease, overlay: DemoOverlay, tmp_path: Path
) -> None:
    """Each overlay image's installer honours the overlay contract (imager spec §10) when run on the host."""
    image = demo_release.image(overlay.image, overlay.tag)
    async with client_for(demo_release) as client:
        files = await layer_files(client, image.repository, image.digest, "arm64")
    assert yaml.safe_load(files[f"profiles/{overlay.name}.yaml"])["arch"] == "arm64"
    installer = tmp_path / "installer"
    installer.write_bytes(files[f"installers/{overlay.name}"])
    installer.chmod(0o755)
    (tmp_path / "artifacts").mkdir()
    for name in (f"arm64/u-boot/{overlay.name}/u-boot.bin", "arm64/dtb/demo/board.dtb"):
        (tmp_path / "artifacts" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "artifacts" / name).write_bytes(files[f"artifacts/{name}"])
    options = yaml.safe_load((await run_tool([installer, "get-options"], stdin=b"console: ttyS2\n")).stdout)
    assert options == {
        "name": overlay.name,
        "kernelArgs": ["console=ttyS2", "demo.board=1"],
        "partitionOptions": {"offset": 2048},
    }
    disk = tmp_path / "disk.raw"
    disk.write_bytes(bytes(1 << 20))
    request = {
        "installDisk": str(disk),
        "mountPrefix": str(tmp_path / "mnt"),
        "artifactsPath": str(tmp_path / "artifacts"),
        "extraOptions": {"configTxtAppend": "dtparam=audio=on"},
    }
    await run_tool([installer, "install"], stdin=yaml.safe_dump(request).encode())
    assert disk.read_bytes()[32768:32779] == b"DEMO-U-BOOT"
    esp = tmp_path / "mnt/boot/EFI"
    assert (esp / "dtb/demo/board.dtb").read_bytes() == demo_overlay.dtb(overlay)
    assert (esp / "config.txt").read_text() == demo_overlay.config_txt(overlay) + "dtparam=audio=on\n"


async def test_rootfs_modules_for_the_modules_dep_step(demo_release: DemoRelease, tmp_path: Path) -> None:
    """What imager spec §4.5 does with rootfs.sqsh: unsquashfs the modules dir, find one kernel."""
    require_tools("zstd", "unsquashfs")
    async with client_for(demo_release) as client:
        for version in ("v1.9.6", "v1.12.1"):
            files = await layer_files(client, "siderolabs/imager", version)
            cpio = (await run_tool(["zstd", "-d", "-c"], stdin=files["usr/install/amd64/initramfs.xz"])).stdout
            members = read_newc(cpio)
            assert {"init", "rootfs.sqsh", "dev/console"} <= set(members)
            assert stat.S_ISCHR(members["dev/console"].mode) and members["dev/console"].rdev == (5, 1)
            sqsh, out = tmp_path / f"{version}.sqsh", tmp_path / version
            sqsh.write_bytes(members["rootfs.sqsh"].data)
            modules = "/" + TalosVersion(version).lib_prefix + "/modules"
            await run_tool(["unsquashfs", "-no-xattrs", "-d", out, "-f", "-n", sqsh, modules])
            (kver,) = [p.name for p in (out / modules.lstrip("/")).iterdir()]
            assert kver == demo_release.kernel_version
            tree = out / modules.lstrip("/") / kver
            assert {"modules.dep", "modules.alias", "modules.builtin", "modules.order"} <= {
                p.name for p in tree.iterdir()
            }
            assert (tree / "kernel/fs/squashfs/squashfs.ko").is_file()


def test_publish_is_deterministic_and_cached(
    demo_release: DemoRelease, demo_key: CosignKey, demo_cache: CacheDir, tmp_path: Path
) -> None:
    again, _ = asyncio.run(publish_demo(demo_release.registry, demo_key, demo_cache))
    assert again.digests() == demo_release.digests()
    fresh_registry = start_registry(tmp_path)
    try:
        fresh, seconds = asyncio.run(publish_demo(fresh_registry.host, demo_key, demo_cache))
    finally:
        fresh_registry.stop()
    # Catalogs name the registry they live in (factory spec §7.3, §7.4); nothing else may change.
    differ = {k for k, v in fresh.digests().items() if demo_release.digests()[k] != v}
    assert differ == {f"siderolabs/{c}:{v}" for v in VERSIONS for c in ("extensions", "overlays")}
    assert seconds < 30, f"a warm publish took {seconds:.1f} s"


async def test_initramfs_compression_follows_version(demo_cache: CacheDir) -> None:
    cpio = newc_archive([Member.file("init", b"#!/bin/sh\n", 0o755)], 0)
    assert (await compress_initramfs(demo_cache, TalosVersion("v1.7.6"), cpio))[:6] == b"\xfd7zXZ\x00"
    assert (await compress_initramfs(demo_cache, TalosVersion("v1.8.0"), cpio))[:4] == bytes.fromhex("28b52ffd")


# --- booting ---------------------------------------------------------------------------------


async def boot_files(release: DemoRelease, tmp_path: Path) -> tuple[Path, Path]:
    async with client_for(release) as client:
        files = await layer_files(client, "siderolabs/imager", BOOT_VERSION)
    kernel, initrd = tmp_path / "vmlinuz", tmp_path / "initramfs.xz"
    kernel.write_bytes(files["usr/install/amd64/vmlinuz"])
    initrd.write_bytes(files["usr/install/amd64/initramfs.xz"])
    return kernel, initrd


def assert_clean(report: BootReport) -> None:
    assert report.done, report.console[-3000:]
    assert not report.errors, report.errors
    assert report.cmdline == "console=ttyS0"
    assert report.duration < 30, f"boot took {report.duration:.1f} s"


@pytest.mark.boot
async def test_boot_plain(demo_release: DemoRelease, tmp_path: Path) -> None:
    require_tools("qemu-system-x86_64")
    report = await boot(*await boot_files(demo_release, tmp_path))
    assert_clean(report)
    assert report.extensions == {} and report.firmware == [] and report.microcode == []
    assert report.rootfs == f"layers=0 VERSION_ID={BOOT_VERSION}"


def _extensions_yaml(layers: list[tuple[str, str, str]]) -> bytes:
    """go-yaml v4 style (imager spec §4.6), with a schematic `extraInfo` block that must be skipped."""
    out = ["layers:"]
    for image, name, version in layers:
        out += [f"    - image: {image}", "      metadata:", f"        name: {name}", f"        version: {version}"]
        out += ["        author: test", "        compatibility:", "            talos:", "                version: ''"]
        if name == "schematic":
            out += ["        extraInfo: |", "            overlay:", "                name: not-a-layer"]
    return ("\n".join(out) + "\n").encode()


async def _modules_dep(kernel: KernelAssets, dummy: bytes, scratch: Path) -> list[Entry]:
    """What the factory's modules.dep extension holds (imager spec §4.5), via real depmod."""
    tree = scratch / "usr/lib/modules" / kernel.kver
    for path in kernel.modules.rglob("*"):
        if path.is_file() and path.relative_to(kernel.modules).as_posix() != kernel.kmod:
            (tree / path.relative_to(kernel.modules)).parent.mkdir(parents=True, exist_ok=True)
            (tree / path.relative_to(kernel.modules)).write_bytes(path.read_bytes())
    (tree / "extras").mkdir()
    (tree / "extras/dummy.ko").write_bytes(dummy)
    (scratch / "depmod.conf").write_text("search extras built-in\n")
    await run_tool(["depmod", "--all", "--basedir", scratch / "usr", "--config", scratch / "depmod.conf", kernel.kver])
    base = f"usr/lib/modules/{kernel.kver}"
    return [Entry.file(f"{base}/{p.name}", p.read_bytes()) for p in sorted(tree.glob("modules.*"))]


@pytest.mark.boot
async def test_boot_with_extensions(demo_release: DemoRelease, demo_cache: CacheDir, tmp_path: Path) -> None:
    """Append what the factory appends (imager spec §4.7) and check the init sees all of it."""
    require_tools("qemu-system-x86_64", "depmod", "mksquashfs")
    kernel_path, initrd = await boot_files(demo_release, tmp_path)
    kernel = KernelAssets(demo_release.kernel_version, demo_cache.kernel_dir(demo_release.kernel_version))
    kmod = next(e for e in demo_release.extensions[BOOT_VERSION] if e.name == "demo-kmod")
    async with client_for(demo_release) as client:
        kmod_files = await layer_files(client, "siderolabs/demo-kmod", kmod.tag)
    ko = f"rootfs/usr/lib/modules/{kernel.kver}/extras/dummy.ko"
    dummy = kmod_files[ko]
    epoch = 1_559_424_892
    sqsh = {
        "0.sqsh": tar_bytes([Entry.file(ko.removeprefix("rootfs/"), dummy)], epoch),
        "1.sqsh": tar_bytes([Entry.file(f"usr/local/share/schematic/{SCHEMATIC_ID}", b"")], epoch),
        "modules.dep.sqsh": tar_bytes(await _modules_dep(kernel, dummy, tmp_path / "depmod"), epoch),
    }
    layers = [("0.sqsh", "demo-kmod", kmod.tag), ("1.sqsh", "schematic", SCHEMATIC_ID)]
    layers.append(("modules.dep.sqsh", "modules.dep", kernel.kver))
    members = [Member.file(name, await squashfs_from_tar(demo_cache, tar, "zstd", epoch)) for name, tar in sqsh.items()]
    members.append(Member.file("extensions.yaml", _extensions_yaml(layers)))
    members.append(Member.file("usr/lib/firmware/demo/demo-nic.bin", b"firmware"))
    microcode = newc_archive(with_parents([Member.file("kernel/x86/microcode/AuthenticAMD.bin", b"ucode")]), epoch)
    appended = await zstd(demo_cache, newc_archive(with_parents(members), epoch), 3)
    combined = tmp_path / "combined.xz"
    combined.write_bytes(microcode + initrd.read_bytes() + appended)

    report = await boot(kernel_path, combined)
    assert_clean(report)
    assert report.extensions == {"demo-kmod": kmod.tag, "schematic": SCHEMATIC_ID, "modules.dep": kernel.kver}
    assert report.schematic == SCHEMATIC_ID
    assert report.kmods == [f"/usr/lib/modules/{kernel.kver}/extras/dummy.ko"]
    assert report.insmod == [f"/usr/lib/modules/{kernel.kver}/extras/dummy.ko ok"]
    assert report.firmware == ["/usr/lib/firmware/demo/demo-nic.bin"]
    assert report.microcode == ["/kernel/x86/microcode/AuthenticAMD.bin"]
    assert report.rootfs == f"layers=3 VERSION_ID={BOOT_VERSION}"


async def test_extensions_awk_reads_pyyaml_too(demo_release: DemoRelease, demo_cache: CacheDir) -> None:
    """The init's parser also takes PyYAML's layout (sorted keys, unindented sequences)."""
    busybox = demo_cache.boot / "busybox"
    awk = Path(__file__).parents[2] / "devtools/demo_release/extensions.awk"
    go_style = _extensions_yaml([("0.sqsh", "demo-kmod", "1.0.0-v1.12.1"), ("1.sqsh", "schematic", SCHEMATIC_ID)])
    py_style = yaml.safe_dump(yaml.safe_load(go_style)).encode()
    for text in (go_style, py_style):
        out = (await run_tool([busybox, "awk", "-f", awk], stdin=text)).stdout.decode()
        assert out == f"0.sqsh\tdemo-kmod\t1.0.0-v1.12.1\n1.sqsh\tschematic\t{SCHEMATIC_ID}\n"
    assert stat.S_IMODE(busybox.stat().st_mode) & 0o111
