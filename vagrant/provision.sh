#!/bin/bash
# provision.sh — runs inside each lab VM as root (Vagrant's shell provisioner), at the
# first `vagrant up` and on `vagrant provision`. Idempotent.
#
#   - host name from Vagrant's machine name; the three VMs resolve each other (/etc/hosts)
#   - the packages of scripts/packages.txt: already in the local box (nothing to do, no
#     internet needed); installed with apt on the public box
#   - /usr/local/bin/kthw -> the host-built binary staged in the synced folder (and
#     the host tools staged next to it, such as kubectl)
#   - the host's path of the repository -> /kthw, so test binaries built on the host,
#     which remember where their sources and snapshots were, find them here
set -euo pipefail

name=$(cat /etc/hostname)

# Vagrant's shell provisioner does not say which machine it runs on; the private
# address does, since each VM has one of the fixed ones.
me=""
while read -r ip host; do
  if ip -4 -o addr show | grep -qw "$ip"; then me=$host; fi
done <<< "$KTHW_HOSTS"
if [ -n "$me" ] && [ "$name" != "$me" ]; then
  echo "$me" > /etc/hostname
  hostname "$me"
fi
me=${me:-$name}

# /etc/hosts: this machine, then the lab VMs, in a block we own.
sed -i '/# kthw lab VMs$/,/# end kthw lab VMs$/d; /^127\.0\.1\.1[[:space:]]/d' /etc/hosts
{
  echo "127.0.1.1 $me"
  echo "# kthw lab VMs"
  printf '%s\n' "$KTHW_HOSTS"
  echo "# end kthw lab VMs"
} >> /etc/hosts

# Packages the chapters need, from the list scripts/test.sh also installs on the host.
missing=()
for p in $(sed -e 's/#.*//' /kthw/scripts/packages.txt 2>/dev/null); do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing ${missing[*]} (the public box lacks them; the kthw/bookworm box has them)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get -q update
  apt-get -y -q --no-install-recommends install "${missing[@]}"
fi

# systemd-udevd gives every new virtual interface, veths included, a "persistent" MAC of
# its own (99-default.link: MACAddressPolicy=persistent) just after it is made. A CNI
# plugin that reported the veth's first MAC then fails CHECK ("Mac doesn't match"), and
# neighbours may cache the wrong one. Leave veths' MACs to whoever made them, as Flatcar
# and the Calico and Flannel docs do. (The host has no udev, so it never sees this.)
link=/etc/systemd/network/50-kthw-veth.link
if [ ! -f "$link" ]; then
  mkdir -p "${link%/*}"
  printf '%s\n' '# kthw (vagrant/provision.sh): CNI plugins set the MAC of the veths they make' \
    '[Match]' 'Driver=veth' '' '[Link]' 'MACAddressPolicy=none' > "$link"
  udevadm control --reload 2>/dev/null || true
fi

if [ -x /kthw/vagrant/.cache/stage/bin/kthw ]; then
  # kthw, and the host tools lab-vms staged next to it (kubectl)
  for f in /kthw/vagrant/.cache/stage/bin/*; do ln -sfn "$f" /usr/local/bin/; done
else
  echo "warning: no kthw binary staged; build it on the host (cargo build --release -p kthw)" >&2
fi

if [ -n "${KTHW_HOST_REPO:-}" ] && [ "$KTHW_HOST_REPO" != /kthw ] && [ ! -e "$KTHW_HOST_REPO" ]; then
  mkdir -p "$(dirname "$KTHW_HOST_REPO")"
  ln -s /kthw "$KTHW_HOST_REPO"
fi
echo "$me: ready ($(uname -r), cgroup $(stat -fc %T /sys/fs/cgroup))"
