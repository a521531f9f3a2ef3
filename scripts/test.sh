#!/usr/bin/env bash
# The whole test suite: installs what the tests need (Python websockets, Node ws,
# Chromium), then formatting, lints, unit/behaviour/loopback/interop tests and doc tests.
# Usage: scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== installing test dependencies"
scripts/install-test-deps.sh

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings

echo "== cargo test"
cargo test --workspace
