#!/bin/bash
# host-deps.sh — install what the HOST needs to build the kthw box and run the lab VMs
# with Vagrant and libvirt (Debian/Ubuntu hosts; run as root). Idempotent: packages
# already present are left alone, so a second run costs a second.
#
#   vagrant vagrant-libvirt          Vagrant and its libvirt provider
#   libvirt-daemon-system ...        libvirtd, virtlogd, virsh, and the QEMU driver
#   dnsmasq-base                     DHCP/DNS for libvirt's networks
#   qemu-system-x86 qemu-utils       the emulator, and qemu-img for the box's disk
#   debootstrap fdisk                build a Debian 12 tree and partition its disk
#   jq                               lab-vms reads cargo's and the checkers' JSON
#
# --no-install-recommends: with recommends, apt pulls in ~260 packages (libguestfs,
# upgrades of perl and gnutls); without, ~80 and nothing is upgraded or removed.
set -euo pipefail

PKGS=(vagrant vagrant-libvirt libvirt-daemon-system libvirt-daemon-driver-qemu libvirt-clients jq
      dnsmasq-base qemu-system-x86 qemu-utils debootstrap fdisk rsync openssh-client)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && { echo "host-deps: all ${#PKGS[@]} packages present"; exit 0; }

echo "host-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt_get() { apt-get -y -q -o DPkg::Lock::Timeout=600 --no-install-recommends "$@"; }
apt_get update >/dev/null || apt_get update

# qemu-system-x86 depends on qemu-utils of its own version. A host that took a newer
# qemu-utils from backports (as this project's CI machine did) must go back to the
# version that matches the qemu-system-x86 apt would install, or apt refuses.
extra=()
want=$(apt-cache policy qemu-system-x86 | awk '/Candidate:/ {print $2}')
have=$(dpkg-query -W -f='${Version}' qemu-utils 2>/dev/null || true)
if [ -n "$want" ] && [ "$want" != "(none)" ] && [ -n "$have" ] && [ "$have" != "$want" ]; then
  echo "host-deps: qemu-utils $have -> $want, to match qemu-system-x86"
  extra=(--allow-downgrades "qemu-utils=$want")
fi
apt_get install "${extra[@]}" "${missing[@]}"
