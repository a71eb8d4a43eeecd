#!/usr/bin/env bash
# Lab 05, the reference answer: import busybox as busybox:1.36, run the two pods of
# labs/05-pods (web: an init container installs the page that its server serves;
# logger: a log-shipping sidecar), fetch the page over the pod IP, read the sidecar's
# log, and reach the app from the sidecar over the pod's localhost.
#
#   solution.sh           do the lab with our CNI plugin, kthw-bridge (again: it is idempotent)
#   solution.sh debian    do it with Debian's plugins: bridge + host-local, then loopback
#   solution.sh cleanup   remove the pods, the image and the files; select our plugin again
#
# KTHW names the kthw binary (default: kthw on PATH); KTHW_HOME moves the state folder.
set -euo pipefail

KTHW=${KTHW:-kthw}
here=$(cd "$(dirname "$0")" && pwd)   # the manifests are next to this script
lab_dir=$("$KTHW" lab dir)            # /var/lib/kthw/lab, or under $KTHW_HOME
src="$lab_dir/05-busybox"
mode=${1:-kthw}
case "$mode" in
    kthw | debian | cleanup) ;;
    *) echo "usage: $0 [kthw|debian|cleanup]" >&2; exit 2 ;;
esac

# Removes both pods at once: each may take its whole grace period (30 s), because httpd,
# sh and tail, as PID 1 of their containers, ignore SIGTERM (question 4 of the sheet).
remove_pods() {
    local pod waits=()
    for pod in web logger; do
        if "$KTHW" pod inspect "$pod" >/dev/null 2>&1; then
            "$KTHW" pod rm "$pod" >/dev/null &
            waits+=($!)
        fi
    done
    for pod in "${waits[@]}"; do wait "$pod"; done
}

# Retries COMMAND... every half second for up to a minute (an emulated VM is slow).
retry() {
    local _
    for _ in $(seq 120); do
        if "$@"; then return 0; fi
        sleep 0.5
    done
    "$@"
}

if [[ "$mode" == cleanup ]]; then
    remove_pods
    "$KTHW" pod network --plugins kthw >/dev/null
    "$KTHW" image rm busybox:1.36 >/dev/null 2>&1 || true
    rm -rf "$src" "$lab_dir/05-localhost.txt"
    exit 0
fi

# Step 1: the image both manifests name (once).
if ! "$KTHW" image inspect busybox:1.36 >/dev/null 2>&1; then
    "$KTHW" runtime spec --busybox -b "$src" >/dev/null
    "$KTHW" image import "$src/rootfs" busybox:1.36
fi

# Step 7 first, on a rerun: the pods made by the other plugins go, then the plugins are chosen.
remove_pods
"$KTHW" pod network --plugins "$mode" | sed -n 1p   # sed, not head: no SIGPIPE under pipefail

# Step 2: the two pods, in the background.
"$KTHW" pod run -f "$here/init-container.yaml" -d
"$KTHW" pod run -f "$here/sidecar.yaml" -d
"$KTHW" pod ls

# Step 3: the page, over the pod IP (on our bridge).
ip=$("$KTHW" pod inspect web | sed -n 's/^ *"podIP": "\([0-9.]*\)".*/\1/p')
retry curl -fsS --max-time 2 -o /dev/null "http://$ip:8080/"
curl -fsS --max-time 2 "http://$ip:8080/"
curl -fsS --max-time 2 "http://$ip:8080/installed.txt"

# Step 5: the sidecar's log, once it has shipped a line or two.
shipped() { [[ "$("$KTHW" pod logs logger -c shipper)" == *"request 2"* ]]; }
retry shipped
"$KTHW" pod logs logger -c shipper | sed -n 1,3p

# Step 6: a web server in app, fetched by shipper over the pod's localhost.
"$KTHW" pod exec logger -c app -- httpd -p 8081 -h /var/log/app
fetch() {
    "$KTHW" pod exec logger -c shipper -- wget -qO- http://127.0.0.1:8081/access.log \
        > "$lab_dir/05-localhost.txt" 2>/dev/null
}
retry fetch
sed -n 1,3p "$lab_dir/05-localhost.txt"
