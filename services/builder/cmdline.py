"""The kernel command line of a profile (imager spec §3, factory spec §11).

`Cmdline` reproduces go-procfs v0.1.2 `procfs.Cmdline` (imager §3.1): an ordered list of parameters,
each a key with ordered values; a key keeps the position where it first appeared. `build_cmdline`
runs the imager's `buildCmdline` steps (imager §3.2) on it.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from typing import Final

from services.builder import quirks
from services.builder.enums import Arch, OutputKind, Platform
from services.builder.meta import ENV_PREFIX, encode_meta
from services.builder.profile import Profile
from services.catalog.versions import Version

# `AppendAll(extraKernelArgs, ...)`: these keys replace instead of adding values (imager §3.2).
EXTRA_ARGS_OVERWRITE: Final = frozenset({"console", "talos.platform"})


class Cmdline:
    """go-procfs `Cmdline`. Values are kept as given; `""` renders as the bare key."""

    def __init__(self, text: str = "") -> None:
        self._params: list[tuple[str, list[str]]] = []
        for key, values in _group(text.split()):
            for value in values:
                self.append(key, value)

    def _find(self, key: str) -> list[str] | None:
        return next((values for k, values in self._params if k == key), None)

    def get(self, key: str) -> tuple[str, ...] | None:
        values = self._find(key)
        return None if values is None else tuple(values)

    def append(self, key: str, value: str) -> None:
        """Add a value to an existing key (keeping its position) or a new parameter at the end."""
        values = self._find(key)
        if values is None:
            self._params.append((key, [value]))
        else:
            values.append(value)

    def set(self, key: str, values: Sequence[str]) -> None:
        """Replace the parameter in place, or add it at the end."""
        for i, (k, _) in enumerate(self._params):
            if k == key:
                self._params[i] = (key, list(values))
                return
        self._params.append((key, list(values)))

    def set_all(self, args: Iterable[str]) -> None:
        """Parse `args` (equal keys grouped) and `set` each key."""
        for key, values in _group(args):
            self.set(key, values)

    def append_all(self, args: Iterable[str], *, overwrite: Collection[str] = (), delete_negated: bool = False) -> None:
        """`AppendAll` with `WithOverwriteArgs(...)` and `WithDeleteNegatedArgs()` (imager §3.1)."""
        for key, values in _group(args):
            if delete_negated and len(key) > 1 and key.startswith("-"):
                self._delete(key[1:], values)
            elif key in overwrite:
                self.set(key, values)
            else:
                for value in values:
                    self.append(key, value)

    def _delete(self, key: str, values: Sequence[str]) -> None:
        for value in values:
            if value == "":
                # `-key`: the whole parameter goes.
                self._params = [(k, v) for k, v in self._params if k != key]
            elif (current := self._find(key)) is not None:
                # `-key=value`: only that value; a parameter left with no values renders nothing.
                current[:] = [v for v in current if v != value]

    def __str__(self) -> str:
        return " ".join(key if value == "" else f"{key}={value}" for key, values in self._params for value in values)


def _group(args: Iterable[str]) -> list[tuple[str, list[str]]]:
    """Tokens → (key, values) in first-seen key order; `k=v` splits at the first `=`."""
    groups: dict[str, list[str]] = {}
    for token in args:
        for word in token.split():
            key, _, value = word.partition("=")
            groups.setdefault(key, []).append(value)
    return list(groups.items())


# Imager §3.4 / factory §11 step 2: platform args identical on both architectures.
_SERIAL: Final = ("console=tty1", "console=ttyS0", "net.ifnames=0")
_PLATFORM_ARGS: Final[dict[Platform, tuple[str, ...]]] = {
    Platform.AWS: _SERIAL,
    Platform.AZURE: (
        "console=ttyS0,115200n8",
        "earlyprintk=ttyS0,115200",
        "rootdelay=300",
        "net.ifnames=0",
        "talos.dashboard.disabled=1",
        "sysctl.kernel.kexec_load_disabled=1",
    ),
    Platform.GCP: (
        "console=ttyS0",
        "net.ifnames=0",
        "talos.dashboard.disabled=1",
        "sysctl.kernel.kexec_load_disabled=1",
    ),
    Platform.AKAMAI: ("console=ttyS0", "console=tty0", "console=tty1", "net.ifnames=0"),
    Platform.DIGITAL_OCEAN: ("console=ttyS0", "console=tty0", "console=tty1", "net.ifnames=0"),
    Platform.ALIBABACLOUD: _SERIAL,
    Platform.CLOUDSTACK: _SERIAL,
    Platform.EXOSCALE: _SERIAL,
    Platform.HCLOUD: _SERIAL,
    Platform.NOCLOUD: _SERIAL,
    Platform.OPENNEBULA: _SERIAL,
    Platform.OPENSTACK: _SERIAL,
    Platform.ORACLE: (*_SERIAL, "talos.dashboard.disabled=1"),
    Platform.SCALEWAY: (*_SERIAL, "talos.dashboard.disabled=1"),
    Platform.UPCLOUD: ("net.ifnames=0",),
    Platform.VULTR: ("net.ifnames=0",),
    Platform.CONTAINER: (),
}
_NVME_TIMEOUT: Final = "nvme_core.io_timeout=4294967295"


def platform_args(platform: Platform, arch: Arch, version: Version) -> tuple[str, ...]:
    """`platform.KernelArgs(arch, quirks)` (imager §3.4)."""
    arm = arch is Arch.ARM64
    match platform:
        case Platform.METAL:
            if arm:
                return ("console=ttyAMA0", "console=tty0")
            return ("console=ttyS0", "console=tty0") if quirks.metal_console_ttys0(version) else ("console=tty0",)
        case Platform.AWS if quirks.nvme_core_io_timeout_aws_only(version):
            return (*_SERIAL, _NVME_TIMEOUT)
        case Platform.VMWARE:
            console = ("console=ttyAMA0",) if arm else ("console=ttyS0", "earlyprintk=ttyS0,115200")
            return ("talos.config=guestinfo", "console=tty0", *console, "net.ifnames=0")
        case Platform.EQUINIX_METAL | Platform.PACKET:
            return ("console=ttyAMA0,115200",) if arm else ("console=ttyS1,115200n8",)
        case _:
            return _PLATFORM_ARGS[platform]


def default_args(version: Version) -> tuple[str, ...]:
    """`kernel.DefaultArgs(quirks)`, in order (imager §3.3)."""
    args: list[str] = []
    if not quirks.drop_init_on_alloc(version):
        args.append("init_on_alloc=1")
    args += ["slab_nomerge=", "pti=on", "consoleblank=0"]
    if not quirks.nvme_core_io_timeout_aws_only(version):
        args.append(_NVME_TIMEOUT)
    args.append("printk.devkmsg=on")
    if quirks.supports_ima(version):
        args += ["ima_template=ima-ng", "ima_appraise=fix", "ima_hash=sha512"]
    if quirks.supports_selinux(version):
        args.append("selinux=1")
    if quirks.supports_disabling_module_signature_verification(version):
        args.append("module.sig_enforce=1")
    if quirks.proc_mem_override_never(version):
        args.append("proc_mem.force_override=never")
    return tuple(args)


def secureboot_args(version: Version) -> tuple[str, ...]:
    """Imager §3.2 / §6.6: `lockdown=confidentiality` only while the quirk forces it (<1.14)."""
    return ("lockdown=confidentiality",) if quirks.forces_lockdown_confidentiality(version) else ()


def build_cmdline(profile: Profile, *, overlay_kernel_args: Sequence[str] = ()) -> str:
    """The imager's `buildCmdline` (imager §3.2) for an enhanced profile.

    `overlay_kernel_args` are the `kernelArgs` the overlay installer's `get-options` answered (imager
    §10); the caller runs it, since that executes a binary.
    """
    version = profile.version
    if version is None:
        raise ValueError("profile has no Talos version; run enhance() first")
    c = Cmdline()
    c.append("talos.platform", profile.platform.talos_name)
    c.set_all(platform_args(profile.platform, profile.arch, version))
    if profile.output.kind is OutputKind.ISO and quirks.supports_halt_if_installed(version):
        c.append("talos.halt_if_installed", "1")
    if profile.overlay is not None:
        c.set_all(overlay_kernel_args)
    c.append_all(default_args(version))
    if profile.secureboot:
        c.append_all(secureboot_args(version))
    meta = profile.customization.meta_contents
    if meta and profile.output.kind.meta_on_cmdline:
        encoded = encode_meta(meta, allow_gzip=quirks.supports_compressed_encoded_meta(version))
        c.append("talos.environment", ENV_PREFIX + encoded)
    c.append_all(profile.customization.extra_kernel_args, overwrite=EXTRA_ARGS_OVERWRITE, delete_negated=True)
    return str(c)
