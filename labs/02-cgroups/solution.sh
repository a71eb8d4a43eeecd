#!/usr/bin/env bash
# Lab 02, the reference answer: a cgroup named lab02 made by hand, with a 64M memory
# limit and a pids limit, a sleeper inside it, and a memory hog that the OOM killer
# stops there. Works on cgroup v1 (one tree per controller) and v2 (one tree).
#
#   sudo bash labs/02-cgroups/solution.sh           # do the lab (safe to run twice)
#   sudo bash labs/02-cgroups/solution.sh cleanup   # undo it
#
# Honours KTHW_HOME as kthw does: the cgroup root is then the instance name derived
# from that folder, and the PID file goes to $KTHW_HOME/lib/lab.
set -euo pipefail

# The instance name: `kthw`, or for KTHW_HOME `k` + 7 hex digits of the path's 64-bit
# FNV-1a hash (the same computation as kthw_lab::Paths::under).
instance() {
    local home=${KTHW_HOME:-}
    if [ -z "$home" ]; then echo kthw; return; fi
    local LC_ALL=C h=$((0xcbf29ce484222325)) i c
    for ((i = 0; i < ${#home}; i++)); do
        printf -v c '%d' "'${home:i:1}"
        h=$(( (h ^ c) * 0x100000001b3 ))
    done
    printf 'k%07x\n' $(( h & 0x0fffffff ))
}

INSTANCE=$(instance)
LAB_DIR=${KTHW_HOME:+$KTHW_HOME/lib/lab}
LAB_DIR=${LAB_DIR:-/var/lib/kthw/lab}
PID_FILE=$LAB_DIR/02-sleeper.pid
CG=/sys/fs/cgroup

if [ "$(stat -fc %T $CG)" = cgroup2fs ]; then
    VERSION=2
    DIRS=("$CG/$INSTANCE/lab02")
else
    VERSION=1
    DIRS=("$CG/memory/$INSTANCE/lab02" "$CG/pids/$INSTANCE/lab02")
fi

# Prints the OOM kill counter of the lab02 cgroup (0 if it has none yet).
oom_kills() {
    local file
    if [ $VERSION = 2 ]; then file=${DIRS[0]}/memory.events; else file=${DIRS[0]}/memory.oom_control; fi
    awk '$1 == "oom_kill" { print $2; found = 1 } END { if (!found) print 0 }' "$file" 2>/dev/null || echo 0
}

cleanup() {
    if [ -f "$PID_FILE" ]; then
        kill -9 "$(cat "$PID_FILE")" 2>/dev/null || true
        rm -f "$PID_FILE"
    fi
    # In every hierarchy, in case the cgroup was made in more than the two we use.
    local d
    for d in "$CG/$INSTANCE/lab02" "$CG"/*/"$INSTANCE/lab02"; do
        [ -d "$d" ] || continue
        for _ in 1 2 3 4 5 6 7 8 9 10; do rmdir "$d" 2>/dev/null && break; sleep 0.1; done
    done
    # The instance's root goes too if nothing else of kthw's is in it.
    for d in "$CG/$INSTANCE" "$CG"/*/"$INSTANCE"; do
        [ -d "$d" ] && rmdir "$d" 2>/dev/null || true
    done
}

if [ "${1:-}" = cleanup ]; then
    cleanup
    exit 0
fi

# Steps 1-3: create the cgroup and set its limits.
if [ $VERSION = 2 ]; then
    # A v2 cgroup gets only the controllers its parent enables for its children.
    echo "+memory +pids" > "$CG/cgroup.subtree_control"
    mkdir -p "$CG/$INSTANCE"
    echo "+memory +pids" > "$CG/$INSTANCE/cgroup.subtree_control"
    mkdir -p "${DIRS[0]}"
    echo 64M > "${DIRS[0]}/memory.max"
    # No swap on top, so that reaching the limit means the OOM killer.
    if [ -f "${DIRS[0]}/memory.swap.max" ]; then echo 0 > "${DIRS[0]}/memory.swap.max"; fi
    echo 20 > "${DIRS[0]}/pids.max"
else
    mkdir -p "${DIRS[@]}"
    echo 64M > "${DIRS[0]}/memory.limit_in_bytes"
    if [ -f "${DIRS[0]}/memory.memsw.limit_in_bytes" ]; then echo 64M > "${DIRS[0]}/memory.memsw.limit_in_bytes"; fi
    echo 20 > "${DIRS[1]}/pids.max"
fi

# Step 4: a sleeper that joins the cgroup (every hierarchy) before it execs `sleep`.
mkdir -p "$LAB_DIR"
if ! { [ -f "$PID_FILE" ] && kill -0 "$(cat "$PID_FILE")" 2>/dev/null; }; then
    setsid sh -c 'for d in "$@"; do echo $$ > "$d/cgroup.procs"; done; exec sleep infinity' \
        sleeper "${DIRS[@]}" < /dev/null > /dev/null 2>&1 &
    echo $! > "$PID_FILE"
fi

# Step 5: a memory hog in the same cgroup, until the OOM killer has struck once.
if [ "$(oom_kills)" -lt 1 ]; then
    sh -c 'for d in "$@"; do echo $$ > "$d/cgroup.procs"; done; a=x; while :; do a="$a$a"; done' \
        hog "${DIRS[@]}" < /dev/null > /dev/null 2>&1 || true
fi
echo "lab02: ${DIRS[*]}: sleeper $(cat "$PID_FILE"), oom_kill $(oom_kills)"
