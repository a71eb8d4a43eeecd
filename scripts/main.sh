#!/usr/bin/env bash
# Set up this machine and run kthw's main job: build kthw, check the machine with
# `kthw doctor`, then build the book and serve it on http://127.0.0.1:3000.
# Run as root on Debian 12 / Ubuntu 22.04+. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
need_root
install_packages
install_rust
install_mdbook

step "cargo build --release"
cargo build --release --quiet
install -m 0755 target/release/kthw /usr/local/bin/kthw

step "kthw doctor"
kthw doctor || echo "kthw doctor found failures: fix them before chapter 1 (see book chapter 0)."

step "the book: http://127.0.0.1:3000 (Ctrl-C to stop)"
exec "$KTHW_MDBOOK" serve book --hostname 127.0.0.1 --port 3000
