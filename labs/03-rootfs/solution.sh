#!/usr/bin/env bash
# Lab 03, the reference answer: import a busybox directory as lab03/busybox, mount rootfs
# lab03 with overlayfs, delete bin/ls and add etc/lab03.txt through the mount, commit
# lab03/busybox:changed, export it as an OCI layout.
#
#   solution.sh           do the lab (again: it is idempotent)
#   solution.sh cleanup   unmount and remove the rootfs, the images and the files
#
# KTHW names the kthw binary (default: kthw on PATH); KTHW_HOME moves the state folder.
set -euo pipefail

KTHW=${KTHW:-kthw}
lab_dir=$("$KTHW" lab dir)   # /var/lib/kthw/lab, or under $KTHW_HOME
src="$lab_dir/03-busybox"
mnt="$lab_dir/03-rootfs"
oci="$lab_dir/03-oci"

if [[ "${1:-}" == cleanup ]]; then
    "$KTHW" rootfs rm lab03 2>/dev/null || true
    "$KTHW" image rm lab03/busybox:changed 2>/dev/null || true
    "$KTHW" image rm lab03/busybox 2>/dev/null || true
    rm -rf "$src" "$mnt" "$oci"
    exit 0
fi

# Step 1: the root filesystem.
mkdir -p "$src/bin" "$src/etc"
cp /bin/busybox "$src/bin/"
for applet in $(/bin/busybox --list); do
    [[ "$applet" == busybox ]] || ln -sf busybox "$src/bin/$applet"
done
echo "hello from the image" > "$src/etc/motd"

# Step 2: the image (once).
if ! "$KTHW" image inspect lab03/busybox >/dev/null 2>&1; then
    "$KTHW" image import "$src" lab03/busybox
fi

# Step 3: the overlay mount (once).
if ! "$KTHW" rootfs ls | grep -q '^lab03 '; then
    "$KTHW" rootfs mount lab03/busybox "$mnt" --name lab03
fi

# Step 4: the changes, through the mount.
rm -f "$mnt/bin/ls"
echo hello > "$mnt/etc/lab03.txt"
"$KTHW" rootfs diff lab03

# Steps 5 and 6: commit and export (again, replacing the previous ones).
"$KTHW" rootfs commit lab03 lab03/busybox:changed
"$KTHW" image export lab03/busybox:changed "$oci" --ref changed
