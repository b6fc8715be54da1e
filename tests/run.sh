#!/usr/bin/env bash
# Every check and test lrsgate has: format, lints, unit and integration tests (the real binary
# against recording stand-in LRS processes), and the README quickstart. Installs what it needs.
set -euo pipefail
cd "$(dirname "$0")/.."
source tests/deps.sh
lrsgate_install_deps

echo "== cargo fmt --check"; cargo fmt --all -- --check
echo "== cargo clippy"; cargo clippy --locked --all-targets -- -D warnings
echo "== cargo test"; cargo test --locked
echo "== quickstart (README command 1)"; bash tests/quickstart.sh --check
