# Shared set-up for scripts/main.sh and scripts/test.sh: sourced, not run.
# Installs what kthw needs on a fresh Debian 12 / Ubuntu 22.04+ machine, as root, and
# skips what is already there, so running it twice is fast.

MDBOOK_VERSION=0.4.52
KTHW_TOOLS=${KTHW_TOOLS:-/opt/kthw-tools}
export KTHW_MDBOOK="$KTHW_TOOLS/bin/mdbook"
export PATH="$HOME/.cargo/bin:$KTHW_TOOLS/bin:$PATH"

step() { printf '\n==> [%s] %s\n' "$(date -u +%H:%M:%S)" "$*"; }

need_root() {
    if [ "$(id -u)" != 0 ]; then
        echo "error: run this as root (sudo $0): kthw creates namespaces, cgroups and mounts" >&2
        exit 1
    fi
}

# Debian packages: scripts/packages.txt, one per line (comments allowed).
install_packages() {
    local wanted missing=()
    wanted=$(sed 's/#.*//' scripts/packages.txt | tr -s ' \n' '\n' | grep -v '^$' | sort -u)
    for p in $wanted; do
        dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed' || missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        step "apt-get install ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends "${missing[@]}"
    fi
}

# Rust 1.85 or newer (edition 2024), with rustfmt and clippy.
install_rust() {
    if ! command -v cargo >/dev/null; then
        step "installing Rust with rustup"
        command -v curl >/dev/null || { apt-get update -qq && apt-get install -y -qq curl ca-certificates; }
        curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal -c rustfmt,clippy
    fi
    local minor
    minor=$(rustc --version | sed -E 's/^rustc 1\.([0-9]+).*/\1/')
    if [ "$minor" -lt 85 ]; then
        echo "error: $(rustc --version) is too old; kthw needs Rust 1.85 or newer: rustup update" >&2
        exit 1
    fi
}

# mdBook, at the version the book is tested with.
install_mdbook() {
    if [ "$("$KTHW_MDBOOK" --version 2>/dev/null)" != "mdbook v$MDBOOK_VERSION" ]; then
        step "cargo install mdbook $MDBOOK_VERSION"
        cargo install --locked --quiet --root "$KTHW_TOOLS" mdbook --version "$MDBOOK_VERSION" \
            --no-default-features --features search
    fi
}

# Python packages for the API server's client tests: scripts/requirements.txt, if any.
install_python() {
    if [ -s scripts/requirements.txt ] && command -v python3 >/dev/null; then
        if ! python3 -m pip install --quiet --disable-pip-version-check -r scripts/requirements.txt 2>/dev/null; then
            python3 -m pip install --quiet --disable-pip-version-check --break-system-packages -r scripts/requirements.txt
        fi
    fi
}
