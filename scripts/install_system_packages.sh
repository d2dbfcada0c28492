#!/usr/bin/env bash
# Installs the Debian/Ubuntu packages the factory and its tests need, only those that are missing.
# As root it runs apt-get; otherwise it prints the exact command to run and fails.
set -euo pipefail

# "check|package": a command name, an absolute path, or py:<module> for a Python stdlib module.
REQUIREMENTS=(
    "py:ensurepip|python3-venv"
    "npm|npm"
    "docker-registry|docker-registry"
    "skopeo|skopeo"
    "sbsign|sbsigntool"
    "sbverify|sbsigntool"
    "objcopy|binutils"
    "openssl|openssl"
    "/usr/lib/systemd/boot/efi/linuxx64.efi.stub|systemd-boot-efi"
    "mksquashfs|squashfs-tools"
    "unsquashfs|squashfs-tools"
    "tar2sqfs|squashfs-tools-ng"
    "depmod|kmod"
    "zstd|zstd"
    "xz|xz-utils"
    "cpio|cpio"
    "dpkg-deb|dpkg"
    "qemu-system-x86_64|qemu-system-x86"
    "qemu-img|qemu-utils"
    "/usr/share/OVMF/OVMF_CODE_4M.fd|ovmf"
    "xorriso|xorriso"
    "grub-mkrescue|grub-common"
    "/usr/lib/grub/i386-pc/boot.img|grub-pc-bin"
    "/usr/lib/grub/x86_64-efi/linux.mod|grub-efi-amd64-bin"
    "mformat|mtools"
    "mkfs.vfat|dosfstools"
    "mkfs.xfs|xfsprogs"
    "sgdisk|gdisk"
    "sfdisk|fdisk"
    "busybox|busybox-static"
    "umoci|umoci"
    "/usr/bin/chromium|chromium"
)

missing=()
for entry in "${REQUIREMENTS[@]}"; do
    check=${entry%%|*}
    package=${entry##*|}
    case $check in
        py:*) python3 -c "import ${check#py:}" 2>/dev/null && continue ;;
        /*) [ -e "$check" ] && continue ;;
        *) command -v "$check" >/dev/null 2>&1 && continue ;;
    esac
    [[ " ${missing[*]-} " == *" $package "* ]] || missing+=("$package")
done

# `apt-get download` (demo kernel, trixie cosign) needs package lists even when nothing is missing.
lists_empty() { ! ls /var/lib/apt/lists/*_Packages >/dev/null 2>&1; }

if [ ${#missing[@]} -eq 0 ]; then
    if lists_empty && [ "$(id -u)" -eq 0 ]; then
        apt-get update -qq
    fi
    exit 0
fi

cmd="apt-get install -y --no-install-recommends ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
    echo "Missing system packages. Run as root:" >&2
    echo "    apt-get update && $cmd" >&2
    exit 1
fi
echo "+ apt-get update && $cmd"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
$cmd -qq
