#!/usr/bin/env bash
# Set up this machine and run every check of kthw: formatting, clippy, all tests (unit,
# system, end to end, the book's includes and build), then every chapter's lab inside the
# lab VMs. Run as root on Debian 12 / Ubuntu 22.04+. Safe to run again.
#
#   KTHW_SKIP_VMS=1 scripts/test.sh    # everything but the VM stage
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
need_root
started=$(date +%s)
timings=()
timed() {
    local name=$1 t0=$SECONDS
    shift
    step "$name"
    "$@"
    timings+=("$(printf '%-28s %4ds' "$name" $((SECONDS - t0)))")
}

timed "packages" install_packages
timed "rust" install_rust
timed "mdbook" install_mdbook
timed "python client" install_python
timed "kubectl clients" install_kubectls
# Containers need it from chapter 4 on, and lab 0 checks it.
sysctl -qw net.ipv4.ip_forward=1

timed "cargo fmt --check" cargo fmt --all -- --check
timed "cargo clippy -D warnings" cargo clippy --workspace --all-targets --quiet -- -D warnings
# System tests must run here, not skip: CI=true makes a missing prerequisite a failure.
export CI=${CI:-true}
timed "cargo test" cargo test --workspace --no-fail-fast
timed "mdbook build" "$KTHW_MDBOOK" build book

if [ "${KTHW_SKIP_VMS:-0}" != 1 ] && [ -x vagrant/ci-stage.sh ]; then
    timed "labs in the lab VMs" vagrant/ci-stage.sh
fi

step "all checks passed in $(( $(date +%s) - started ))s"
printf '  %s\n' "${timings[@]}"
