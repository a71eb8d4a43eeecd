#!/bin/bash
# libvirtd.sh — make sure libvirt answers on qemu:///system, starting its daemons by hand
# on hosts whose PID 1 is not systemd (containers, CI sandboxes), and stop exactly what
# it started.
#
#   libvirtd.sh start   start virtlogd and libvirtd unless libvirt already answers;
#                       define the "default" storage pool if it is missing
#   libvirtd.sh stop    remove the kthw networks, then stop the daemons that `start`
#                       started (by the PIDs it recorded), and nothing else
#
# On a normal Linux desktop, systemd starts libvirtd on demand and `start` only checks.
# Pid files and logs go to $KTHW_LIBVIRT_RUN (default /run/kthw-libvirt).
set -euo pipefail

RUN=${KTHW_LIBVIRT_RUN:-/run/kthw-libvirt}
export LIBVIRT_DEFAULT_URI=qemu:///system
# No syslog in such sandboxes: warnings and errors go to a file next to the pid files.
export LIBVIRT_LOG_OUTPUTS="3:file:$RUN/libvirtd.log"

answers() { virsh version >/dev/null 2>&1; }
alive() { [ -f "$RUN/$1.pid" ] && kill -0 "$(cat "$RUN/$1.pid")" 2>/dev/null; }

start() {
  mkdir -p "$RUN"
  if ! answers; then
    if [ -d /run/systemd/system ]; then
      echo "libvirt does not answer on $LIBVIRT_DEFAULT_URI; run: sudo systemctl start libvirtd" >&2
      exit 1
    fi
    [ "$(id -u)" = 0 ] || { echo "starting libvirtd by hand needs root" >&2; exit 1; }
    # libvirt turns on IP forwarding for its NAT network; `stop` puts the old value back.
    [ -f "$RUN/ip_forward" ] || cat /proc/sys/net/ipv4/ip_forward > "$RUN/ip_forward"
    # Without udev, /dev/kvm stays root-only (udev would make it root:kvm 0660). libvirt
    # then sees KVM in its QEMU probe (run as root) but not for the qemu user, judges
    # its capability cache stale, and re-probes QEMU on every call: ~10 s each, which
    # turns a 3-VM `vagrant up` into many minutes. Give it udev's usual permissions.
    if [ -c /dev/kvm ] && getent group kvm >/dev/null && [ ! -f "$RUN/kvm-perms" ]; then
      stat -c '%a %U:%G' /dev/kvm > "$RUN/kvm-perms"
      chgrp kvm /dev/kvm
      chmod 0660 /dev/kvm
    fi
    # The `started` file marks what this script owns, so `stop` never kills a daemon
    # that someone else started.
    alive virtlogd || { /usr/sbin/virtlogd -d -p "$RUN/virtlogd.pid"; echo virtlogd >> "$RUN/started"; }
    alive libvirtd || { /usr/sbin/libvirtd -d -p "$RUN/libvirtd.pid"; echo libvirtd >> "$RUN/started"; }
    for _ in $(seq 60); do answers && break; sleep 0.5; done
    answers || { echo "libvirtd did not come up; see $RUN/libvirtd.log" >&2; exit 1; }
    echo "libvirt: started virtlogd ($(cat "$RUN/virtlogd.pid")) and libvirtd ($(cat "$RUN/libvirtd.pid"))"
  fi
  # vagrant-libvirt stores box images and VM disks in the pool named "default".
  if ! virsh -q pool-info default >/dev/null 2>&1; then
    mkdir -p /var/lib/libvirt/images
    virsh -q pool-define-as default dir --target /var/lib/libvirt/images >/dev/null
    virsh -q pool-autostart default >/dev/null
  fi
  virsh -q pool-start default >/dev/null 2>&1 || true
}

stop() {
  answers || return 0
  # Networks the Vagrantfile names kthw-*; vagrant destroy removes them when it removes
  # the last VM, but a failed run may leave them (and their dnsmasq) behind.
  for net in $(virsh -q net-list --all --name | grep '^kthw-' || true); do
    virsh -q net-destroy "$net" >/dev/null 2>&1 || true
    virsh -q net-undefine "$net" >/dev/null 2>&1 || true
  done
  [ -f "$RUN/started" ] || return 0
  for d in libvirtd virtlogd; do
    grep -qx "$d" "$RUN/started" || continue
    if alive "$d"; then
      pid=$(cat "$RUN/$d.pid")
      kill "$pid"
      for _ in $(seq 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
      echo "libvirt: stopped $d ($pid)"
    fi
    rm -f "$RUN/$d.pid"
  done
  rm -f "$RUN/started"
  if [ -f "$RUN/kvm-perms" ]; then
    read -r mode owner < "$RUN/kvm-perms"
    chown "$owner" /dev/kvm && chmod "$mode" /dev/kvm
    rm -f "$RUN/kvm-perms"
  fi
  if [ -f "$RUN/ip_forward" ]; then
    cat "$RUN/ip_forward" > /proc/sys/net/ipv4/ip_forward
    rm -f "$RUN/ip_forward"
  fi
  # libvirtd leaves its base iptables chains behind; drop them when they are empty.
  for ipt in iptables ip6tables; do
    for spec in filter:INPUT:LIBVIRT_INP filter:OUTPUT:LIBVIRT_OUT filter:FORWARD:LIBVIRT_FWX \
                filter:FORWARD:LIBVIRT_FWI filter:FORWARD:LIBVIRT_FWO nat:POSTROUTING:LIBVIRT_PRT \
                mangle:POSTROUTING:LIBVIRT_PRT; do
      IFS=: read -r tbl parent chain <<< "$spec"
      "$ipt" -t "$tbl" -S "$chain" >/dev/null 2>&1 || continue
      [ "$("$ipt" -t "$tbl" -S "$chain" | wc -l)" = 1 ] || continue
      "$ipt" -t "$tbl" -D "$parent" -j "$chain" 2>/dev/null || true
      "$ipt" -t "$tbl" -X "$chain" 2>/dev/null || true
    done
  done
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
