#!/bin/bash
# ci-stage.sh — the lab-VM stage of the test command (scripts/test.sh runs it after the
# host tests). Needs root on a Debian 12 host. Idempotent, and cheap to rerun:
#
#   1. host packages (box/host-deps.sh; no-op when present)
#   2. the box: built once per content (box/build.sh caches it in /var/cache/kthw-box,
#      keyed by a hash of its inputs, scripts/packages.txt included)
#   3. lab-vms test: boot the VMs under libvirt (software emulation when KVM does not
#      work), run every chapter's reference answer, lab checker and system tests in each
#      VM as root, print the chapter x VM table, destroy the VMs, stop the daemons that
#      were started for it. Fails naming the VM and the stage.
#
#   vagrant/ci-stage.sh [CHAPTER...]     (default: every chapter `kthw lab list` knows)
#
# Settings: KTHW_VMS (default "server node-0 node-1"), CARGO_TARGET_DIR (default the
# repository's target/), and the other KTHW_* variables of lab-vms.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
T0=$(date +%s)
timings=()
timed() { # NAME COMMAND...
  local name=$1 t rc=0; shift
  t=$(date +%s)
  "$@" || rc=$?
  timings+=("$(printf '%-14s %4d s' "$name" $(( $(date +%s) - t )))")
  return "$rc"
}
finish() {
  # lab-vms test tears down what it started; this catches a failure before that point.
  "$HERE/box/libvirtd.sh" stop || true
  echo "== lab VMs stage timings"
  printf '   %s\n' "${timings[@]}"
  echo "   total          $(printf '%4d' $(( $(date +%s) - T0 ))) s"
}
trap finish EXIT

[ "$(id -u)" = 0 ] || { echo "ci-stage.sh: needs root (libvirt, debootstrap, loop devices)" >&2; exit 1; }
export KTHW_BOX=kthw/bookworm
export CI=true

timed host-deps "$HERE/box/host-deps.sh"

# The debug build of kthw, which the host tests have just built: a release build would
# compile the whole workspace a second time, for a binary that only runs checks.
if [ -z "${KTHW_BIN:-}" ]; then
  REPO=$(cd "$HERE/.." && pwd)
  TARGET=${CARGO_TARGET_DIR:-$REPO/target}
  timed "build kthw" bash -c "cd '$REPO' && CARGO_TARGET_DIR='$TARGET' cargo build -q -p kthw -p kthw-pods --bins"
  export KTHW_BIN=$TARGET/debug/kthw
fi

timed box "$HERE/lab-vms" box
timed "lab-vms test" "$HERE/lab-vms" test "$@"
