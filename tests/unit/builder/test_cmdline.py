"""Kernel command line (imager spec §3, factory spec §11): go-procfs model, tables, every vector."""

from __future__ import annotations

from dataclasses import replace

import pytest

from services.builder.cmdline import Cmdline, build_cmdline, default_args, platform_args, secureboot_args
from services.builder.enums import Arch, Platform
from services.builder.profile import Customization, OverlayInput, Profile, parse_profile_path
from services.catalog.versions import Version, parse
from services.schematic.model import MetaValue

# Factory §11 / §10: the pre-1.8 metal amd64 line (also the standard iPXE script's kernel args).
METAL_AMD64_OLD = (
    "talos.platform=metal console=ttyS0 console=tty0 init_on_alloc=1 slab_nomerge pti=on consoleblank=0 "
    "nvme_core.io_timeout=4294967295 printk.devkmsg=on ima_template=ima-ng ima_appraise=fix ima_hash=sha512"
)
DEFAULTS_1_15 = (
    "slab_nomerge pti=on consoleblank=0 printk.devkmsg=on selinux=1 module.sig_enforce=1 proc_mem.force_override=never"
)


def profile(path: str, version: str, **changes: object) -> Profile:
    v = parse(version)
    return replace(parse_profile_path(path, v), version=v, **changes)  # type: ignore[arg-type]


def extra(*args: str) -> Customization:
    return Customization(extra_kernel_args=args)


@pytest.mark.parametrize(
    ("path", "version", "expected"),
    [
        # Imager §3.5, from `imager_test.go`.
        ("cmdline-metal-amd64", "1.7.0", METAL_AMD64_OLD),
        (
            "cmdline-metal-arm64",
            "1.10.1",
            "talos.platform=metal console=ttyAMA0 console=tty0 init_on_alloc=1 slab_nomerge pti=on consoleblank=0 "
            "nvme_core.io_timeout=4294967295 printk.devkmsg=on ima_template=ima-ng ima_appraise=fix ima_hash=sha512 "
            "selinux=1",
        ),
        (
            "cmdline-metal-amd64",
            "1.13.0",
            "talos.platform=metal console=tty0 init_on_alloc=1 slab_nomerge pti=on consoleblank=0 "
            "nvme_core.io_timeout=4294967295 printk.devkmsg=on selinux=1 module.sig_enforce=1 "
            "proc_mem.force_override=never",
        ),
        (
            "cmdline-aws-amd64",
            "1.14.0",
            "talos.platform=aws console=tty1 console=ttyS0 net.ifnames=0 nvme_core.io_timeout=4294967295 "
            "slab_nomerge pti=on consoleblank=0 printk.devkmsg=on selinux=1 module.sig_enforce=1 "
            "proc_mem.force_override=never",
        ),
        (
            "cmdline-metal-arm64",
            "1.14.0",
            "talos.platform=metal console=ttyAMA0 console=tty0 slab_nomerge pti=on consoleblank=0 printk.devkmsg=on "
            "selinux=1 module.sig_enforce=1 proc_mem.force_override=never",
        ),
        # Imager §3.5 derived vectors.
        ("metal-amd64.iso", "1.15.0", f"talos.platform=metal console=tty0 talos.halt_if_installed=1 {DEFAULTS_1_15}"),
        (
            "vmware-amd64.raw",
            "1.15.0",
            "talos.platform=vmware talos.config=guestinfo console=tty0 console=ttyS0 earlyprintk=ttyS0,115200 "
            f"net.ifnames=0 {DEFAULTS_1_15}",
        ),
        # Factory §11 expectations.
        (
            "cmdline-aws-arm64",
            "1.9.0",
            "talos.platform=aws console=tty1 console=ttyS0 net.ifnames=0 init_on_alloc=1 slab_nomerge pti=on "
            "consoleblank=0 nvme_core.io_timeout=4294967295 printk.devkmsg=on ima_template=ima-ng ima_appraise=fix "
            "ima_hash=sha512",
        ),
        (
            "nocloud-amd64-uki.efi",
            "1.9.0",
            "talos.platform=nocloud console=tty1 console=ttyS0 net.ifnames=0 init_on_alloc=1 slab_nomerge pti=on "
            "consoleblank=0 nvme_core.io_timeout=4294967295 printk.devkmsg=on ima_template=ima-ng ima_appraise=fix "
            "ima_hash=sha512",
        ),
        (
            "installer-amd64.tar",
            "1.10.0",
            "talos.platform=metal console=tty0 init_on_alloc=1 slab_nomerge pti=on consoleblank=0 "
            "nvme_core.io_timeout=4294967295 printk.devkmsg=on ima_template=ima-ng ima_appraise=fix ima_hash=sha512 "
            "selinux=1",
        ),
        (
            "installer-arm64.tar",
            "1.10.0",
            "talos.platform=metal console=ttyAMA0 console=tty0 init_on_alloc=1 slab_nomerge pti=on consoleblank=0 "
            "nvme_core.io_timeout=4294967295 printk.devkmsg=on ima_template=ima-ng ima_appraise=fix ima_hash=sha512 "
            "selinux=1",
        ),
        # The iPXE script line (factory §10) is the pre-1.8 metal amd64 command line.
        ("kernel-amd64", "1.7.6", METAL_AMD64_OLD),
        # The ISO halt arg appears from 1.8 only.
        ("metal-amd64.iso", "1.7.9", METAL_AMD64_OLD),
    ],
)
def test_vectors(path: str, version: str, expected: str) -> None:
    assert build_cmdline(profile(path, version)) == expected


def test_download_test_suffixes() -> None:
    """`defaultKernelArgsSuffix`: ` module.sig_enforce=1` from 1.12, ` proc_mem.force_override=never` from 1.13."""
    base_1_11 = build_cmdline(profile("cmdline-metal-amd64", "1.11.0"))
    assert build_cmdline(profile("cmdline-metal-amd64", "1.12.0")) == base_1_11 + " module.sig_enforce=1"
    assert build_cmdline(profile("cmdline-metal-amd64", "1.13.0")) == (
        base_1_11 + " module.sig_enforce=1 proc_mem.force_override=never"
    )


def test_secureboot_iso_1_13_appends_lockdown_after_defaults() -> None:
    line = build_cmdline(profile("metal-amd64-secureboot.iso", "1.13.0"))
    assert line.endswith(" proc_mem.force_override=never lockdown=confidentiality")


def test_secureboot_from_1_14_has_no_lockdown() -> None:
    assert "lockdown" not in build_cmdline(profile("metal-amd64-secureboot.iso", "1.14.0"))


def test_extra_args_merge_vector() -> None:
    args = extra("console=ttyS0,115200", "-selinux", "net.ifnames=0", "-pti=on", "talos.platform=nocloud")
    assert build_cmdline(profile("metal-amd64.iso", "1.15.0", customization=args)) == (
        "talos.platform=nocloud console=ttyS0,115200 talos.halt_if_installed=1 slab_nomerge consoleblank=0 "
        "printk.devkmsg=on module.sig_enforce=1 proc_mem.force_override=never net.ifnames=0"
    )


def test_extra_args_appended_factory_example() -> None:
    line = build_cmdline(profile("cmdline-metal-amd64", "1.7.0", customization=extra("nolapic", "nomodeset")))
    assert line == METAL_AMD64_OLD + " nolapic nomodeset"


def test_extra_init_on_alloc_appends_not_replaces() -> None:
    line = build_cmdline(profile("cmdline-metal-amd64", "1.13.0", customization=extra("init_on_alloc=0")))
    assert "init_on_alloc=1 init_on_alloc=0 slab_nomerge" in line
    negated = build_cmdline(
        profile("cmdline-metal-amd64", "1.13.0", customization=extra("-init_on_alloc", "init_on_alloc=0"))
    )
    assert negated.endswith(" init_on_alloc=0")
    assert "init_on_alloc=1" not in negated


def test_meta_on_cmdline_factory_example() -> None:
    meta = Customization(meta_contents=(MetaValue(0x0A, '{"externalIPs":["1.2.3.4"]}'),))
    line = build_cmdline(profile("cmdline-metal-amd64", "1.7.0", customization=meta))
    assert (
        line
        == METAL_AMD64_OLD + " talos.environment=INSTALLER_META_BASE64=MHhhPXsiZXh0ZXJuYWxJUHMiOlsiMS4yLjMuNCJdfQ=="
    )


def test_meta_before_extra_args_and_never_for_disk_images() -> None:
    custom = Customization(extra_kernel_args=("quiet",), meta_contents=(MetaValue(0x0C, "hello"),))
    iso = build_cmdline(profile("metal-amd64.iso", "1.15.0", customization=custom))
    assert iso.endswith(" talos.environment=INSTALLER_META_BASE64=MHhjPWhlbGxv quiet")
    disk = build_cmdline(profile("metal-amd64.raw", "1.15.0", customization=custom))
    assert "talos.environment" not in disk and disk.endswith(" quiet")


def test_overlay_args_replace_whole_keys_after_platform_args() -> None:
    overlay = OverlayInput(name="rock5b", image="siderolabs/sbc-rockchip", ref="r", digest="d")
    p = profile("metal-arm64.raw.xz", "1.15.0", overlay=overlay)
    rock5b = "cma=128MB console=tty0 console=ttyS9,115200 console=ttyS2,115200 sysctl.kernel.kexec_load_disabled=1"
    line = build_cmdline(p, overlay_kernel_args=[rock5b, "talos.dashboard.disabled=1"])
    assert line == (
        "talos.platform=metal console=tty0 console=ttyS9,115200 console=ttyS2,115200 cma=128MB "
        f"sysctl.kernel.kexec_load_disabled=1 talos.dashboard.disabled=1 {DEFAULTS_1_15}"
    )
    # Without an overlay in the profile the args are not used.
    assert "cma" not in build_cmdline(profile("metal-arm64.raw.xz", "1.15.0"), overlay_kernel_args=["cma=1"])


def test_needs_version() -> None:
    with pytest.raises(ValueError, match="enhance"):
        build_cmdline(parse_profile_path("cmdline-metal-amd64", Version(1, 9, 0)))


V_OLD, V_NEW = Version(1, 13, 0), Version(1, 14, 0)
SERIAL = ("console=tty1", "console=ttyS0", "net.ifnames=0")


@pytest.mark.parametrize(
    ("platform", "arch", "version", "expected"),
    [
        (Platform.METAL, Arch.AMD64, Version(1, 7, 0), ("console=ttyS0", "console=tty0")),
        (Platform.METAL, Arch.AMD64, Version(1, 8, 0, ("alpha", 1)), ("console=tty0",)),
        (Platform.METAL, Arch.ARM64, Version(1, 7, 0), ("console=ttyAMA0", "console=tty0")),
        (Platform.AWS, Arch.AMD64, V_OLD, SERIAL),
        (Platform.AWS, Arch.ARM64, V_NEW, (*SERIAL, "nvme_core.io_timeout=4294967295")),
        (
            Platform.AZURE,
            Arch.ARM64,
            V_NEW,
            (
                "console=ttyS0,115200n8",
                "earlyprintk=ttyS0,115200",
                "rootdelay=300",
                "net.ifnames=0",
                "talos.dashboard.disabled=1",
                "sysctl.kernel.kexec_load_disabled=1",
            ),
        ),
        (
            Platform.GCP,
            Arch.AMD64,
            V_NEW,
            ("console=ttyS0", "net.ifnames=0", "talos.dashboard.disabled=1", "sysctl.kernel.kexec_load_disabled=1"),
        ),
        (Platform.AKAMAI, Arch.AMD64, V_NEW, ("console=ttyS0", "console=tty0", "console=tty1", "net.ifnames=0")),
        (Platform.DIGITAL_OCEAN, Arch.AMD64, V_NEW, ("console=ttyS0", "console=tty0", "console=tty1", "net.ifnames=0")),
        *[(p, Arch.AMD64, V_NEW, SERIAL) for p in (Platform.ALIBABACLOUD, Platform.CLOUDSTACK, Platform.EXOSCALE)],
        *[
            (p, Arch.ARM64, V_NEW, SERIAL)
            for p in (Platform.HCLOUD, Platform.NOCLOUD, Platform.OPENNEBULA, Platform.OPENSTACK)
        ],
        (Platform.ORACLE, Arch.ARM64, V_NEW, (*SERIAL, "talos.dashboard.disabled=1")),
        (Platform.SCALEWAY, Arch.AMD64, V_NEW, (*SERIAL, "talos.dashboard.disabled=1")),
        (Platform.UPCLOUD, Arch.AMD64, V_NEW, ("net.ifnames=0",)),
        (Platform.VULTR, Arch.AMD64, V_NEW, ("net.ifnames=0",)),
        (
            Platform.VMWARE,
            Arch.AMD64,
            V_NEW,
            ("talos.config=guestinfo", "console=tty0", "console=ttyS0", "earlyprintk=ttyS0,115200", "net.ifnames=0"),
        ),
        (
            Platform.VMWARE,
            Arch.ARM64,
            V_NEW,
            ("talos.config=guestinfo", "console=tty0", "console=ttyAMA0", "net.ifnames=0"),
        ),
        (Platform.EQUINIX_METAL, Arch.AMD64, V_NEW, ("console=ttyS1,115200n8",)),
        (Platform.EQUINIX_METAL, Arch.ARM64, V_NEW, ("console=ttyAMA0,115200",)),
        (Platform.PACKET, Arch.AMD64, V_NEW, ("console=ttyS1,115200n8",)),
        (Platform.CONTAINER, Arch.AMD64, V_NEW, ()),
    ],
)
def test_platform_args(platform: Platform, arch: Arch, version: Version, expected: tuple[str, ...]) -> None:
    assert platform_args(platform, arch, version) == expected


def test_every_platform_has_args() -> None:
    for platform in Platform:
        for arch in Arch:
            platform_args(platform, arch, V_NEW)


def test_packet_renders_as_equinix_metal() -> None:
    assert build_cmdline(profile("cmdline-packet-amd64", "1.15.0")).startswith(
        "talos.platform=equinixMetal console=ttyS1,115200n8 "
    )


@pytest.mark.parametrize(
    ("version", "expected"),
    [
        (
            Version(1, 9, 0),
            "init_on_alloc=1 slab_nomerge= pti=on consoleblank=0 nvme_core.io_timeout=4294967295 printk.devkmsg=on "
            "ima_template=ima-ng ima_appraise=fix ima_hash=sha512",
        ),
        (
            Version(1, 10, 0),
            "init_on_alloc=1 slab_nomerge= pti=on consoleblank=0 nvme_core.io_timeout=4294967295 printk.devkmsg=on "
            "ima_template=ima-ng ima_appraise=fix ima_hash=sha512 selinux=1",
        ),
        (
            Version(1, 12, 0),
            "init_on_alloc=1 slab_nomerge= pti=on consoleblank=0 nvme_core.io_timeout=4294967295 printk.devkmsg=on "
            "selinux=1 module.sig_enforce=1",
        ),
        (
            Version(1, 14, 0, ("alpha", 1)),
            "slab_nomerge= pti=on consoleblank=0 printk.devkmsg=on selinux=1 "
            "module.sig_enforce=1 proc_mem.force_override=never",
        ),
    ],
)
def test_default_args(version: Version, expected: str) -> None:
    assert " ".join(default_args(version)) == expected


def test_secureboot_args() -> None:
    assert secureboot_args(Version(1, 13, 9)) == ("lockdown=confidentiality",)
    assert secureboot_args(Version(1, 14, 0, ("beta", 0))) == ()


# --- the go-procfs model (imager §3.1) ----------------------------------------------------------


def test_parse_groups_and_renders() -> None:
    c = Cmdline("console=tty1 slab_nomerge= quiet console=ttyS0 a=b=c")
    assert str(c) == "console=tty1 console=ttyS0 slab_nomerge quiet a=b=c"
    assert c.get("console") == ("tty1", "ttyS0")
    assert c.get("a") == ("b=c",)
    assert c.get("missing") is None


def test_set_in_place_and_append_at_end() -> None:
    c = Cmdline("a=1 b=2 c=3")
    c.set("b", ["x", "y"])
    c.set("d", ["4"])
    c.append("a", "5")
    assert str(c) == "a=1 a=5 b=x b=y c=3 d=4"


def test_set_all_groups_equal_keys() -> None:
    c = Cmdline("talos.platform=metal console=tty9")
    c.set_all(["console=tty1", "x", "console=ttyS0"])
    assert str(c) == "talos.platform=metal console=tty1 console=ttyS0 x"


def test_append_all_negation_and_overwrite() -> None:
    c = Cmdline("console=tty0 pti=on pti=off selinux=1 keep=1")
    c.append_all(["-pti=on", "-selinux", "console=ttyS0", "keep=2", "-"], overwrite={"console"}, delete_negated=True)
    # `-` alone (length 1) is not a negation; it is appended as a bare key.
    assert str(c) == "console=ttyS0 pti=off keep=1 keep=2 -"


def test_emptied_parameter_keeps_its_position() -> None:
    c = Cmdline("a=1 b=2")
    c.append_all(["-a=1"], delete_negated=True)
    assert str(c) == "b=2"
    c.append("a", "3")
    assert str(c) == "a=3 b=2"


def test_negation_without_delete_flag_is_appended() -> None:
    c = Cmdline("a=1")
    c.append_all(["-a"])
    assert str(c) == "a=1 -a"
