#!/bin/busybox sh
# Demo Talos init (devtools.demo_release). Real Talos runs machined from rootfs.sqsh; this one only
# reports what the Image Factory put into the initramfs, as DEMO-* lines on the console, then powers
# off. Contract: imager spec §4.6/§4.7 (extensions.yaml and <n>.sqsh at the root, firmware under
# /usr/lib/firmware or /lib/firmware before 1.10, microcode in an uncompressed cpio in front).
/bin/busybox mkdir -p /bin /proc /sys /dev /tmp /layers /sysroot
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
# Keep kernel messages off the console from here on, so DEMO-* lines are never split.
dmesg -n 1

say() { echo "DEMO-$*"; }
fail() { echo "DEMO-ERROR: $*"; }

say "CMDLINE: $(cat /proc/cmdline)"
say "RELEASE: $(cat /demo/release)"
while read -r ko; do
    insmod "/demo/modules/$ko" 2>/tmp/err || fail "insmod $ko: $(cat /tmp/err)"
done < /demo/modules.load

# Talos mounts rootfs.sqsh at the bottom of an overlay, extensions on top (earliest layer highest).
mkdir -p /layers/rootfs
mount -t squashfs -o loop,ro /rootfs.sqsh /layers/rootfs 2>/tmp/err || fail "mount rootfs.sqsh: $(cat /tmp/err)"
lower_top=""
count=0
if [ -f /extensions.yaml ]; then
    awk -f /demo/extensions.awk /extensions.yaml > /tmp/layers
    while IFS='	' read -r image name version; do
        dir="/layers/$image"
        mkdir -p "$dir"
        if ! mount -t squashfs -o loop,ro "/$image" "$dir" 2>/tmp/err; then
            fail "mount $image: $(cat /tmp/err)"
            continue
        fi
        say "EXTENSION: $name $version"
        [ "$name" = schematic ] && say "SCHEMATIC: $version"
        for ko in $(find "$dir/usr/lib/modules" "$dir/lib/modules" -name '*.ko*' 2>/dev/null | sort); do
            say "KMOD: ${ko#"$dir"}"
        done
        count=$((count + 1))
        lower_top="$lower_top${lower_top:+:}$dir"
    done < /tmp/layers
fi
# Earlier layers on top: lowerdir lists the top layer first and rootfs last. A read-only overlay
# needs two lower dirs, so without extensions the root is a bind mount.
if [ -n "$lower_top" ]; then
    set -- mount -t overlay overlay -o "lowerdir=$lower_top:/layers/rootfs" /sysroot
else
    set -- mount --bind /layers/rootfs /sysroot
fi
if "$@" 2>/tmp/err; then
    say "ROOTFS: layers=$count $(grep '^VERSION_ID=' /sysroot/etc/os-release)"
    for dep in /sysroot/usr/lib/modules/*/modules.dep /sysroot/lib/modules/*/modules.dep; do
        [ -f "$dep" ] || continue
        for ko in $(sed -n 's,^\(extras/[^:]*\):.*,\1,p' "$dep"); do
            mod="${dep%/modules.dep}/$ko"
            if insmod "$mod" 2>/tmp/err; then say "INSMOD: ${mod#/sysroot} ok"; else fail "insmod $ko: $(cat /tmp/err)"; fi
        done
    done
else
    fail "root mount: $(cat /tmp/err)"
fi

for f in $(find /usr/lib/firmware /lib/firmware -type f 2>/dev/null | sort); do say "FIRMWARE: $f"; done
for f in $(find /kernel/x86/microcode -type f 2>/dev/null | sort); do say "MICROCODE: $f"; done
say "DONE uptime=$(cut -d' ' -f1 /proc/uptime)s"
poweroff -f
