#!/usr/bin/env bash
# Every check and test lrsgate has: format, lints, unit and integration tests (the real binary
# against recording stand-in LRS processes), interop with a real Ralph LRS, a real cmi5 AU in
# headless Chromium, the README quickstart, and a build of every fuzz target. Installs what it
# needs.
set -euo pipefail
cd "$(dirname "$0")/.."
source tests/deps.sh
lrsgate_install_deps
lrsgate_install_test_deps

echo "== cargo fmt --check"; cargo fmt --all -- --check
echo "== cargo clippy"; cargo clippy --locked --all-targets -- -D warnings
echo "== example alert rules (promtool)"; promtool check rules conf/prometheus-alerts.yml
# Licences, bans and sources of every dependency (deny.toml). Advisories need the RustSec database
# from GitHub, which these machines cannot reach: `cargo deny check advisories` where it can.
echo "== cargo deny (licences, bans, sources)"
deny_bin=target/tools/bin/cargo-deny
[ -x "$deny_bin" ] || cargo install cargo-deny --version 0.20.2 --locked --root target/tools --quiet
"$deny_bin" deny --log-level error check licenses bans sources
echo "== fuzz targets build (stable toolchain; run them with tests/fuzz/run.sh)"
cargo build --locked --manifest-path tests/fuzz/Cargo.toml --target-dir target/fuzz-build --bins
# Both members' binaries (lrsgate, tests/standin-lrs): the browser test starts them from
# target/debug, and the Rust tests find the stand-in there already built.
echo "== cargo build"; cargo build --locked --bins
echo "== cargo test"; cargo test --locked
echo "== interop: a real Ralph LRS"; cargo test --locked --test interop_ralph -- --ignored
echo "== end to end: a real cmi5 AU in headless Chromium"; (cd tests/e2e && node --test --test-concurrency=1 .)
echo "== quickstart (README command 1)"; bash tests/quickstart.sh --check
