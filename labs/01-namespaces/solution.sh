#!/usr/bin/env bash
# Lab 01, the reference answer: start `sleep infinity` in its own UTS, PID, mount and
# network namespaces, then mount a tmpfs inside it with `kthw ns exec`.
#
#   solution.sh           do the lab (again: it is idempotent)
#   solution.sh cleanup   stop the sleeper and remove its pid file
#
# KTHW names the kthw binary (default: kthw on PATH); KTHW_HOME moves the state folder.
set -euo pipefail

KTHW=${KTHW:-kthw}
lab_dir=$("$KTHW" lab dir)   # /var/lib/kthw/lab, or under $KTHW_HOME
pid_file="$lab_dir/01-sleeper.pid"

running() { [[ -s "$pid_file" ]] && kill -0 "$(cat "$pid_file")" 2>/dev/null; }

if [[ "${1:-}" == cleanup ]]; then
    if running; then
        pid=$(cat "$pid_file")
        # Our init forwards SIGTERM to sleep, then exits with its status.
        kill -TERM "$pid"
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
    rm -f "$pid_file"
    exit 0
fi

# Step 1: the sleeper, in the background, in a session of its own so that it outlives
# this script. kthw writes the host PID of its PID 1 to the pid file.
if ! running; then
    rm -f "$pid_file"
    setsid "$KTHW" ns run --uts --pid --mount --net --hostname lab01 \
        --pid-file "$pid_file" -- sleep infinity </dev/null >/dev/null 2>&1 &
    for _ in $(seq 50); do [[ -s "$pid_file" ]] && break; sleep 0.1; done
fi
pid=$(cat "$pid_file")

# Steps 2 and 3: look at it from the outside.
"$KTHW" ns show "$pid"
"$KTHW" ns exec "$pid" -- hostname

# Step 4: a mount inside its mount namespace, made from the host with setns.
if ! grep -q " /mnt .* - tmpfs lab01 " "/proc/$pid/mountinfo"; then
    "$KTHW" ns exec "$pid" -- mount -t tmpfs lab01 /mnt
fi
echo "sleeper $pid is ready"
