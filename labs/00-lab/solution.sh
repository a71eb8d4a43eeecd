#!/usr/bin/env bash
# Reference answer for lab 00 ("Your lab machine"): the steps of labs/00-lab/README.md,
# in order, as a script. The tests and the lab VMs run it, then `kthw lab check 00`.
#
#   solution.sh          do the lab (idempotent: safe to run twice)
#   solution.sh cleanup  undo what the lab left behind (the saved report)
#
# KTHW names the kthw binary to use (default: kthw on PATH). It needs root.
set -euo pipefail
KTHW=${KTHW:-kthw}

case "${1:-run}" in
run)
    # Step 1: the packages. Only when missing, so it works offline where they are baked in.
    if ! command -v iptables >/dev/null || [ ! -x /bin/busybox ] || ldd /bin/busybox >/dev/null 2>&1; then
        apt-get install -y --no-install-recommends busybox-static iptables iproute2
    fi
    # Step 2: IP forwarding, for the containers of chapter 4 onwards.
    sysctl -w net.ipv4.ip_forward=1 >/dev/null
    # Step 3: the doctor must find no failure.
    "$KTHW" doctor
    # Step 4: save its report where the checker looks for it.
    dir=$("$KTHW" lab dir)
    "$KTHW" doctor --json >"$dir/00-doctor.json"
    ;;
cleanup)
    dir=$("$KTHW" lab dir)
    rm -f "$dir/00-doctor.json"
    ;;
*)
    echo "usage: $0 [run|cleanup]" >&2
    exit 2
    ;;
esac
