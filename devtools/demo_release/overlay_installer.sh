#!/bin/sh
# Overlay installer of the demo board (imager spec §10): one argument, YAML on stdin, YAML on stdout.
# A POSIX shell script rather than the static Go binary real overlays ship; it reads only flat
# `key: value` lines, which is all the contract sends at the top level.
set -eu
input=$(mktemp)
trap 'rm -f "$input"' EXIT
cat >"$input"

value() {
    sed -n "s/^$1:[[:space:]]*//p" "$input" | head -n 1 | sed -e "s/^[\"']//" -e "s/[\"']\$//"
}

case "${1:-}" in
get-options)
    # Optional option `console` (from overlay.options) overrides the serial console.
    console=$(value console)
    printf 'name: demo_board\nkernelArgs:\n  - console=%s\n  - demo.board=1\npartitionOptions:\n  offset: 2048\n' \
        "${console:-ttyAMA0,115200}"
    ;;
install)
    disk=$(value installDisk)
    prefix=$(value mountPrefix)
    artifacts=$(value artifactsPath)
    [ -n "$disk" ] && [ -n "$artifacts" ] || { echo "installDisk and artifactsPath are required" >&2; exit 1; }
    # Inside the 2048 LBAs reserved by partitionOptions.offset, before any GPT structure.
    dd if="$artifacts/arm64/u-boot/demo_board/u-boot.bin" of="$disk" bs=512 seek=64 conv=notrunc 2>/dev/null
    mkdir -p "$prefix/boot/EFI/dtb/demo"
    cp "$artifacts/arm64/dtb/demo/board.dtb" "$prefix/boot/EFI/dtb/demo/board.dtb"
    ;;
*)
    echo "usage: $0 get-options|install" >&2
    exit 1
    ;;
esac
