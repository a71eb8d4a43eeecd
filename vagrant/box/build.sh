#!/bin/bash
# build.sh — build the kthw lab box offline-friendly: a Debian 12 (bookworm) disk made
# with debootstrap, packaged as a vagrant-libvirt box, and cached.
#
#   build.sh             build the box unless the cache already holds it; print its path
#   build.sh --key       print the cache key only
#
# The box is what `config.vm.box = "kthw/bookworm"` boots. It holds everything the labs
# need (the packages of scripts/packages.txt), so the VMs never need the internet.
# Building needs root, a Debian mirror (the same one apt uses), loop devices, and the
# host packages of host-deps.sh. It takes 3-5 minutes; most of it is debootstrap.
#
# The cache lives in $KTHW_BOX_CACHE (default /var/cache/kthw-box), one folder per key.
# The key is a hash of everything that decides the box's content: this script, the
# package list and the Debian suite. Change any of them and the next run builds a new
# box; the old one stays until you delete it. Downloaded .debs are kept in
# $KTHW_BOX_CACHE/debs, so rebuilds download only what changed.
#
# What a public box (debian/bookworm64) does differently: it is built by Debian's
# cloud team with Packer and a full installer run, has no lab packages, and must be
# downloaded. Ours is debootstrapped in minutes and tuned to boot fast under software
# emulation (small initramfs, no timers, classic interface names).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
CACHE=${KTHW_BOX_CACHE:-/var/cache/kthw-box}
SUITE=bookworm
MIRROR=${KTHW_DEBIAN_MIRROR:-http://deb.debian.org/debian}
PACKAGES_TXT=$REPO/scripts/packages.txt

# What every Vagrant box needs (systemd as init, sshd, sudo, rsync for synced folders),
# a kernel and boot loader, and lz4 for a fast initramfs. The labs' own packages come
# from scripts/packages.txt, read at build time so adding one there rebuilds the box.
BASE_PKGS=(systemd systemd-sysv systemd-resolved udev dbus kmod openssh-server sudo rsync
           iproute2 iptables iputils-ping procps less ca-certificates
           linux-image-amd64 grub-pc initramfs-tools lz4)

lab_packages() {
  [ -f "$PACKAGES_TXT" ] || return 0
  sed -e 's/#.*//' -e 's/[[:space:]]//g' "$PACKAGES_TXT" | grep -v '^$' || true
}

# Comments do not count: rewording this file must not cost a rebuild.
cache_key() {
  { grep -v '^[[:space:]]*#' "$0"; echo "$SUITE"; lab_packages | sort -u; } | sha256sum | cut -c1-16
}

KEY=$(cache_key)
if [ "${1:-}" = --key ]; then echo "$KEY"; exit 0; fi

OUT=$CACHE/$KEY
BOX=$OUT/kthw-bookworm.box
if [ -f "$BOX" ]; then echo "$BOX"; exit 0; fi

[ "$(id -u)" = 0 ] || { echo "build.sh: building the box needs root (debootstrap, loop devices)" >&2; exit 1; }
log() { echo "box: $*" >&2; }
WORK=$CACHE/work-$KEY
ROOT=$WORK/rootfs
mkdir -p "$CACHE/debs" "$WORK"

LOOPS=()
cleanup() {
  set +e
  for m in mnt var/cache/apt/archives dev proc sys; do mountpoint -q "$ROOT/$m" 2>/dev/null && umount "$ROOT/$m"; done
  [ ${#LOOPS[@]} -gt 0 ] && losetup -d "${LOOPS[@]}"
  rm -rf "$WORK"
}
trap cleanup EXIT

# ---------------------------------------------------------------- 1. debootstrap
t0=$(date +%s)
pkgs=$(printf '%s\n' "${BASE_PKGS[@]}" | paste -sd, -)
log "debootstrap $SUITE with: $pkgs"
debootstrap --variant=minbase --include="$pkgs" --cache-dir="$CACHE/debs" \
  "$SUITE" "$ROOT" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 \
  || { tail -20 "$WORK/debootstrap.log" >&2; exit 1; }
log "debootstrap took $(( $(date +%s) - t0 )) s"

# The labs' packages go in with apt, inside the tree, as on a running system:
# debootstrap's own installer cannot configure packages with rich maintainer scripts
# (skopeo's dependencies fail there). policy-rc.d stops their services from starting
# now; the .debs land in the shared cache.
mount --bind /dev "$ROOT/dev"; mount -t proc proc "$ROOT/proc"; mount -t sysfs sys "$ROOT/sys"
mount --bind "$CACHE/debs" "$ROOT/var/cache/apt/archives"
rm -f "$ROOT/etc/resolv.conf"; cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
printf '#!/bin/sh\nexit 101\n' > "$ROOT/usr/sbin/policy-rc.d"
chmod +x "$ROOT/usr/sbin/policy-rc.d"
mapfile -t lab_pkgs < <(lab_packages | sort -u)
log "apt-get install ${lab_pkgs[*]}"
chroot "$ROOT" apt-get -q update >>"$WORK/debootstrap.log" 2>&1
DEBIAN_FRONTEND=noninteractive chroot "$ROOT" apt-get -y -q --no-install-recommends install \
  "${lab_pkgs[@]}" >>"$WORK/debootstrap.log" 2>&1 || { tail -20 "$WORK/debootstrap.log" >&2; exit 1; }
# Services that come with lab packages (etcd, a registry) stay off: each lab starts
# what it needs, and idle daemons cost real time under emulation.
for p in "${lab_pkgs[@]}"; do
  for unit in $(chroot "$ROOT" dpkg -L "$p" 2>/dev/null | grep -E '^/(usr/)?lib/systemd/system/[^/]+\.service$' || true); do
    chroot "$ROOT" systemctl disable "$(basename "$unit")" >/dev/null 2>&1 || true
  done
done
rm -f "$ROOT/usr/sbin/policy-rc.d"
for m in var/cache/apt/archives sys proc dev; do umount "$ROOT/$m"; done
rm -rf "$ROOT/var/lib/apt/lists/"*
log "packages took $(( $(date +%s) - t0 )) s in all"

# ---------------------------------------------------------------- 2. configure the tree
# Classic ethN names (what Vagrant expects), a serial console, and no crypto self-tests:
# each second of kernel work is ten under emulation.
CMDLINE="console=tty0 console=ttyS0,115200 net.ifnames=0 biosdevname=0 quiet cryptomgr.notests"
echo kthw > "$ROOT/etc/hostname"
printf '127.0.0.1 localhost\n127.0.1.1 kthw\n::1 localhost ip6-localhost ip6-loopback\n' > "$ROOT/etc/hosts"
echo 'LABEL=root / ext4 defaults,errors=remount-ro 0 1' > "$ROOT/etc/fstab"

# eth0 by DHCP with systemd-networkd, which Vagrant's Debian guest support detects and
# extends with the private network. ClientIdentifier=mac: clones of one disk must not
# all send the same DHCP client id, or they get the same address.
mkdir -p "$ROOT/etc/systemd/network"
printf '[Match]\nName=eth0\n[Network]\nDHCP=ipv4\n[DHCPv4]\nClientIdentifier=mac\n' \
  > "$ROOT/etc/systemd/network/10-eth0.network"
chroot "$ROOT" systemctl enable systemd-networkd.service systemd-resolved.service >/dev/null 2>&1
chroot "$ROOT" systemctl disable systemd-networkd-wait-online.service >/dev/null 2>&1 || true
ln -sfn /run/systemd/resolve/stub-resolv.conf "$ROOT/etc/resolv.conf"

# Every clone must get its own machine-id: systemd makes one at first boot when empty.
: > "$ROOT/etc/machine-id"
[ -L "$ROOT/var/lib/dbus/machine-id" ] || rm -f "$ROOT/var/lib/dbus/machine-id"

# The conventional Vagrant base box: user vagrant with Vagrant's well-known insecure
# key (Vagrant replaces it or, with insert_key=false, keeps using it) and sudo without
# a password. These VMs are throw-away lab machines on a private network.
VAGRANT_PUB='ssh-rsa AAAAB3NzaC1yc2EAAAABIwAAAQEA6NF8iallvQVp22WDkTkyrtvp9eWW6A8YVr+kz4TjGYe7gHzIw+niNltGEFHzD8+v1I2YJ6oXevct1YeS0o9HZyN1Q9qgCgzUFtdOKLv6IedplqoPkcmF0aYet2PkEDo3MlTBckFXPITAMzF8dJSIFo9D8HfdOV0IAdx4O7PtixWKn5y2hMNG0zQPyUecp4pzC6kivAIhyfHilFR61RGL+GPXQ2MWZWFYbAGjyiYJnAmCP3NOTd0jMZEnDkbUvxhMmBYSdETk1rRgm+R4LOzFUGaHqHDLKLX+FIPKcF96hrucXzcWyLbIbEgE98OHlnVYCzRdK8jlqm8tehUc9c9WhQ== vagrant insecure public key'
chroot "$ROOT" /bin/sh -c 'id vagrant >/dev/null 2>&1 || useradd -m -s /bin/bash -U vagrant; echo vagrant:vagrant | chpasswd'
echo 'vagrant ALL=(ALL) NOPASSWD:ALL' > "$ROOT/etc/sudoers.d/vagrant"
chmod 0440 "$ROOT/etc/sudoers.d/vagrant"
install -d -m 700 -o 1000 -g 1000 "$ROOT/home/vagrant/.ssh"
echo "$VAGRANT_PUB" > "$ROOT/home/vagrant/.ssh/authorized_keys"
chown 1000:1000 "$ROOT/home/vagrant/.ssh/authorized_keys"
chmod 600 "$ROOT/home/vagrant/.ssh/authorized_keys"
mkdir -p "$ROOT/etc/ssh/sshd_config.d"
echo 'UseDNS no' > "$ROOT/etc/ssh/sshd_config.d/kthw.conf"

# Timers and one-shots that would burn emulated CPU while the labs run.
for u in apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer e2scrub_reap.service \
         fstrim.timer man-db.timer; do
  chroot "$ROOT" systemctl mask "$u" >/dev/null 2>&1 || true
done

# A small lz4 initramfs with only a VM's storage drivers: the default one is 30 MB of
# zstd and takes 10 s to unpack under emulation.
sed -i 's/^MODULES=.*/MODULES=list/; s/^COMPRESS=.*/COMPRESS=lz4/' "$ROOT/etc/initramfs-tools/initramfs.conf"
printf '%s\n' virtio_pci virtio_blk virtio_scsi sd_mod ahci ata_piix ext4 > "$ROOT/etc/initramfs-tools/modules"
chroot "$ROOT" update-initramfs -u -k all >/dev/null 2>&1
chroot "$ROOT" apt-get clean
echo "kthw lab box $KEY, built $(date -u +%FT%TZ)" > "$ROOT/etc/kthw-box"

# ---------------------------------------------------------------- 3. boot loader
# Written by hand because some hosts (this project's CI machine among them) have a
# kernel without partition-table support: no /dev/loopNp1, so grub-install cannot run.
# core.img gets its prefix baked in, and grub-bios-setup writes the MBR through loops.
KVER=$(basename "$ROOT"/boot/vmlinuz-* | sed 's/^vmlinuz-//')
mkdir -p "$ROOT/boot/grub/i386-pc"
cp "$ROOT"/usr/lib/grub/i386-pc/*.mod "$ROOT"/usr/lib/grub/i386-pc/*.lst \
   "$ROOT"/usr/lib/grub/i386-pc/boot.img "$ROOT/boot/grub/i386-pc/"
cat > "$ROOT/boot/grub/grub.cfg" <<GRUBCFG
set timeout=0
serial --speed=115200
terminal_input console serial
terminal_output console serial
menuentry 'Debian GNU/Linux 12 ($KVER)' {
  insmod part_msdos
  insmod ext2
  search --no-floppy --label root --set=root
  linux /boot/vmlinuz-$KVER root=LABEL=root ro $CMDLINE
  initrd /boot/initrd.img-$KVER
}
GRUBCFG
cat > "$ROOT/etc/default/grub" <<GRUBDEF
GRUB_DEFAULT=0
GRUB_TIMEOUT=0
GRUB_CMDLINE_LINUX="$CMDLINE"
GRUB_TERMINAL="console serial"
GRUB_SERIAL_COMMAND="serial --speed=115200"
GRUB_DISABLE_OS_PROBER=true
GRUBDEF
chroot "$ROOT" grub-mkimage -O i386-pc -o /boot/grub/i386-pc/core.img \
  -p '(hd0,msdos1)/boot/grub' biosdisk part_msdos ext2 search search_label
echo '(hd0) /dev/vda' > "$ROOT/boot/grub/device.map"

# ---------------------------------------------------------------- 4. the disk
# 8 GiB sparse, MBR, one ext4 partition filled straight from the tree by mkfs (-d).
RAW=$WORK/disk.raw
truncate -s 8G "$RAW"
echo 'start=2048, type=83, bootable' | sfdisk -q "$RAW"
PART_KB=$(( ($(stat -c %s "$RAW") - 1048576) / 1024 ))
mkfs.ext4 -q -L root -E offset=1048576 -d "$ROOT" "$RAW" "${PART_KB}k"
# grub-bios-setup needs a block device for the disk, and must resolve the device of its
# -d folder: a loop for the whole disk, one for the partition mounted inside the tree.
PLOOP=$(losetup --find --show --offset 1048576 "$RAW"); LOOPS+=("$PLOOP")
LOOP=$(losetup --find --show "$RAW"); LOOPS+=("$LOOP")
mount "$PLOOP" "$ROOT/mnt"
mount --bind /dev "$ROOT/dev"; mount -t proc proc "$ROOT/proc"; mount -t sysfs sys "$ROOT/sys"
printf '(hd0) %s\n(hd1) %s\n' "$LOOP" "$PLOOP" > "$ROOT/tmp/device.map"
chroot "$ROOT" grub-bios-setup --skip-fs-probe --force -d /mnt/boot/grub/i386-pc -m /tmp/device.map "$LOOP"
for m in mnt dev proc sys; do umount "$ROOT/$m"; done
losetup -d "${LOOPS[@]}"; LOOPS=()
sync

# ---------------------------------------------------------------- 5. the box
# A vagrant-libvirt box is a tar of box.img (qcow2), metadata.json and a Vagrantfile
# with box defaults. box.img is a compressed qcow2 (3x smaller, cheap to read); the tar
# is not gzipped (gzip of a qcow2 costs much CPU for little gain). kthw-box-key lets
# lab-vms see which build Vagrant holds.
mkdir -p "$WORK/box"
qemu-img convert -c -O qcow2 "$RAW" "$WORK/box/box.img"
rm -f "$RAW"
echo '{"provider":"libvirt","format":"qcow2","virtual_size":8}' > "$WORK/box/metadata.json"
cat > "$WORK/box/Vagrantfile" <<'BOXVF'
# Defaults of the kthw/bookworm box (Debian 12 built by vagrant/box/build.sh).
Vagrant.configure("2") do |config|
  config.vm.provider :libvirt do |libvirt|
    libvirt.disk_bus = "virtio"
    libvirt.nic_model_type = "virtio"
  end
end
BOXVF
echo "$KEY" > "$WORK/box/kthw-box-key"
mkdir -p "$OUT"
# The kernel stays next to the box: kvm-probe.sh boots it to test whether KVM works.
cp "$ROOT/boot/vmlinuz-$KVER" "$OUT/vmlinuz"
tar -cf "$OUT/kthw-bookworm.box.part" -C "$WORK/box" metadata.json Vagrantfile kthw-box-key box.img
mv "$OUT/kthw-bookworm.box.part" "$BOX"
log "built $BOX ($(du -h "$BOX" | cut -f1)) in $(( $(date +%s) - t0 )) s"
echo "$BOX"
