#!/usr/bin/env bash
# Installs what the interop tests (`cargo test -p sockjet-interop`) and the hub's Redis
# tests (`cargo test -p sockjet-hub`) need:
#
#   1. a Python venv with `websockets` (interop/peers/requirements.txt),
#   2. Node.js `ws` (interop/peers/package.json + package-lock.json) in interop/peers/node_modules,
#   3. Debian's `chromium` at /usr/bin/chromium (needs root for apt-get),
#   4. Debian's `redis-server` (needs root for apt-get; the tests start their own instances
#      on free loopback ports, so no service needs to run),
#   5. Debian's `tinyproxy`, a real HTTP CONNECT proxy for the client's proxy test (the
#      test starts its own on a free port).
#
# Idempotent: every step first checks whether it is already done, so a second run takes
# about a second. Exits non-zero with a message on any failure.
#
# The tests find the peers at the same places; these variables move them (set them for
# both this script and `cargo test`):
#   SOCKJET_INTEROP_VENV          venv directory      (default: target/interop-venv)
#   SOCKJET_INTEROP_PYTHON        Python of the venv  (default: $SOCKJET_INTEROP_VENV/bin/python)
#   SOCKJET_INTEROP_NODE          node binary         (default: node on PATH)
#   SOCKJET_INTEROP_NODE_MODULES  node_modules        (default: interop/peers/node_modules)
#   SOCKJET_INTEROP_CHROMIUM      chromium binary     (default: /usr/bin/chromium)
#   SOCKJET_REDIS_SERVER          redis-server binary (default: redis-server on PATH)
#   SOCKJET_INTEROP_TINYPROXY     tinyproxy binary    (default: tinyproxy on PATH)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PEERS="$ROOT/interop/peers"
VENV="${SOCKJET_INTEROP_VENV:-$ROOT/target/interop-venv}"
PYTHON="${SOCKJET_INTEROP_PYTHON:-$VENV/bin/python}"
NODE="${SOCKJET_INTEROP_NODE:-node}"
NODE_MODULES="${SOCKJET_INTEROP_NODE_MODULES:-$PEERS/node_modules}"
CHROMIUM="${SOCKJET_INTEROP_CHROMIUM:-/usr/bin/chromium}"

log() { echo "install-test-deps: $*"; }
die() {
    echo "install-test-deps: ERROR: $*" >&2
    exit 1
}
trap 'die "command failed (exit $?) at line $LINENO: $BASH_COMMAND"' ERR

# ----- 1. Python venv + websockets -----
requirements="$PEERS/requirements.txt"
[ -f "$requirements" ] || die "$requirements is missing"
stamp="$VENV/.sockjet-requirements.txt"
if [ -x "$PYTHON" ] && [ -f "$stamp" ] && cmp -s "$requirements" "$stamp" &&
    "$PYTHON" -c 'import websockets' 2>/dev/null; then
    log "python: $("$PYTHON" -c 'import websockets; print("websockets", websockets.__version__)') already installed in $VENV"
else
    if [ ! -x "$PYTHON" ]; then
        command -v python3 >/dev/null || die "python3 is not installed (need Python 3.9 or later)"
        log "python: creating venv $VENV ($(python3 --version))"
        python3 -m venv "$VENV" || die "python3 -m venv $VENV failed (on Debian: apt-get install python3-venv)"
    fi
    [ -x "$PYTHON" ] || die "$PYTHON does not exist after creating the venv; is SOCKJET_INTEROP_PYTHON right?"
    log "python: pip install -r $requirements"
    "$PYTHON" -m pip install --disable-pip-version-check --quiet -r "$requirements" ||
        die "pip install -r $requirements failed"
    "$PYTHON" -c 'import websockets' || die "websockets does not import after pip install"
    cp "$requirements" "$stamp"
    log "python: installed $("$PYTHON" -c 'import websockets; print("websockets", websockets.__version__)')"
fi

# ----- 2. Node.js ws -----
command -v "$NODE" >/dev/null || die "node ($NODE) is not installed (need Node.js 18 or later)"
command -v npm >/dev/null || die "npm is not installed"
lock="$PEERS/package-lock.json"
node_stamp="$NODE_MODULES/.sockjet-package-lock.json"
if [ -f "$lock" ] && [ -f "$node_stamp" ] && cmp -s "$lock" "$node_stamp" &&
    NODE_PATH="$NODE_MODULES" "$NODE" -e 'require("ws")' 2>/dev/null; then
    log "node: ws $(NODE_PATH="$NODE_MODULES" "$NODE" -p 'require("ws/package.json").version') already installed in $NODE_MODULES"
else
    if [ "$NODE_MODULES" != "$PEERS/node_modules" ]; then
        die "SOCKJET_INTEROP_NODE_MODULES=$NODE_MODULES lacks ws; install it there yourself, or unset the variable"
    fi
    if [ -f "$lock" ]; then
        log "node: npm ci in $PEERS"
        (cd "$PEERS" && npm ci --no-audit --no-fund --loglevel=error) || die "npm ci in $PEERS failed"
    else
        log "node: npm install in $PEERS (no package-lock.json yet: creating it; commit it)"
        (cd "$PEERS" && npm install --no-audit --no-fund --loglevel=error) || die "npm install in $PEERS failed"
    fi
    NODE_PATH="$NODE_MODULES" "$NODE" -e 'require("ws")' || die "ws does not load after npm install"
    cp "$lock" "$node_stamp"
    log "node: installed ws $(NODE_PATH="$NODE_MODULES" "$NODE" -p 'require("ws/package.json").version')"
fi

# ----- 3. Chromium -----
if [ -x "$CHROMIUM" ]; then
    log "chromium: $CHROMIUM already installed"
else
    if [ "$CHROMIUM" != /usr/bin/chromium ]; then
        die "SOCKJET_INTEROP_CHROMIUM=$CHROMIUM does not exist; unset it to install Debian's chromium"
    fi
    if [ "$(id -u)" -ne 0 ]; then
        die "$CHROMIUM is missing and this script is not running as root, so it cannot apt-get install it; run: sudo apt-get update && sudo apt-get install -y chromium (or run this script as root)"
    fi
    command -v apt-get >/dev/null || die "$CHROMIUM is missing and apt-get is not available; install Chromium yourself and set SOCKJET_INTEROP_CHROMIUM"
    log "chromium: apt-get update && apt-get install -y chromium"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update || die "apt-get update failed"
    apt-get install -y chromium || die "apt-get install -y chromium failed"
    [ -x "$CHROMIUM" ] || die "apt-get installed chromium but $CHROMIUM does not exist"
    log "chromium: installed $("$CHROMIUM" --version 2>/dev/null || echo "$CHROMIUM")"
fi

# ----- 4, 5. Debian packages: redis-server, tinyproxy -----
# apt_install BINARY PACKAGE VARIABLE: installs PACKAGE unless BINARY (the value of the
# environment VARIABLE if set, else BINARY on PATH) is already there.
apt_install() {
    local binary="$1" package="$2" variable="$3"
    local wanted="${!variable:-$binary}"
    if command -v "$wanted" >/dev/null; then
        log "$package: already installed at $(command -v "$wanted")"
        return
    fi
    if [ -n "${!variable:-}" ]; then
        die "$variable=${!variable} does not exist; unset it to install Debian's $package"
    fi
    if [ "$(id -u)" -ne 0 ]; then
        die "$binary is missing and this script is not running as root, so it cannot apt-get install it; run: sudo apt-get update && sudo apt-get install -y $package (or run this script as root)"
    fi
    command -v apt-get >/dev/null || die "$binary is missing and apt-get is not available; install $package yourself and set $variable"
    log "$package: apt-get update && apt-get install -y $package"
    export DEBIAN_FRONTEND=noninteractive
    if [ -z "${APT_UPDATED:-}" ]; then
        apt-get update || die "apt-get update failed"
        APT_UPDATED=1
    fi
    apt-get install -y "$package" || die "apt-get install -y $package failed"
    command -v "$binary" >/dev/null || die "apt-get installed $package but $binary is not on PATH"
    log "$package: installed at $(command -v "$binary")"
}
apt_install redis-server redis-server SOCKJET_REDIS_SERVER
apt_install tinyproxy tinyproxy SOCKJET_INTEROP_TINYPROXY

log "all test dependencies are installed"
