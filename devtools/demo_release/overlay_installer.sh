#!/bin/sh
# Overlay installer of the demo board @NAME@ in @IMAGE@ (imager spec §10): one argument, YAML on stdin, YAML
# on stdout. One template for every demo overlay: overlay.py fills in the overlay's name and image.
# A POSIX shell script rather than the static Go binary real overlays ship. It reads the flat top-level
# `key: value` lines and the direct children of `extraOptions` (plain scalars or `|`/`|-` blocks), which
# is all the factory's canonical YAML sends.
#
#   get-options  option `console` (default ttyAMA0,115200) -> kernel args `console=<c> demo.board=1`;
#                partition offset 2048 LBAs (1 MiB) for the firmware below.
#   install      u-boot.bin at byte 32768 (LBA 64) of the raw image, inside that reserved space;
#                <prefix>/boot/EFI/ (the ESP): dtb/demo/board.dtb, u-boot.bin and config.txt, to which
#                the extra option `configTxtAppend` is appended (as the Raspberry Pi overlay does).
set -eu
input=$(mktemp)
trap 'rm -f "$input"' EXIT
cat >"$input"

value() {
    sed -n "s/^$1:[[:space:]]*//p" "$input" | head -n 1 | sed -e "s/^[\"']//" -e "s/[\"']\$//"
}

# `extraOptions.<key>`: a scalar on its line, or the lines of a `|`/`|-` block (indentation removed).
extra() {
    awk -v key="$1" '
        function indent(s) { match(s, /^ */); return RLENGTH }
        /^extraOptions:/ { inside = 1; next }
        !inside { next }
        /^[^ ]/ { exit }
        block {
            if ($0 !~ /[^ ]/) { print ""; next }
            if (bdepth < 0) bdepth = indent($0)
            if (indent($0) < bdepth) exit
            print substr($0, bdepth + 1); next
        }
        depth < 0 && /[^ ]/ { depth = indent($0) }
        indent($0) == depth && index(substr($0, depth + 1), key ":") == 1 {
            v = substr($0, depth + length(key) + 2); sub(/^ +/, "", v)
            if (v ~ /^[|]-?$/) { block = 1; bdepth = -1; next }
            if (v ~ /^".*"$/ || v ~ /^\047.*\047$/) v = substr(v, 2, length(v) - 2)
            print v; exit
        }
    ' depth=-1 "$input"
}

case "${1:-}" in
get-options)
    console=$(value console)
    printf 'name: @NAME@\nkernelArgs:\n  - console=%s\n  - demo.board=1\npartitionOptions:\n  offset: 2048\n' \
        "${console:-ttyAMA0,115200}"
    ;;
install)
    disk=$(value installDisk)
    prefix=$(value mountPrefix)
    artifacts=$(value artifactsPath)
    [ -n "$disk" ] && [ -n "$prefix" ] && [ -n "$artifacts" ] || {
        echo "installDisk, mountPrefix and artifactsPath are required" >&2
        exit 1
    }
    uboot="$artifacts/arm64/u-boot/@NAME@/u-boot.bin"
    # Inside the 2048 LBAs reserved by partitionOptions.offset, before any GPT structure.
    dd if="$uboot" of="$disk" bs=512 seek=64 conv=notrunc 2>/dev/null
    esp="$prefix/boot/EFI"
    mkdir -p "$esp/dtb/demo"
    cp "$artifacts/arm64/dtb/demo/board.dtb" "$esp/dtb/demo/board.dtb"
    cp "$uboot" "$esp/u-boot.bin"
    {
        echo "# @NAME@ boot configuration, written by the @IMAGE@ overlay installer"
        echo "arm_64bit=1"
        echo "kernel=u-boot.bin"
        echo "device_tree=dtb/demo/board.dtb"
        extra configTxtAppend
    } >"$esp/config.txt"
    ;;
*)
    echo "usage: $0 get-options|install" >&2
    exit 1
    ;;
esac
