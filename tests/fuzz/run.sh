#!/usr/bin/env bash
# Run every fuzz target for N executions each (default 1,000,000) and print the counts.
# Needs a nightly toolchain (libFuzzer instrumentation) and cargo-fuzz; installs cargo-fuzz.
# Usage (from the repository root): bash tests/fuzz/run.sh [executions]
set -euo pipefail
runs="${1:-1000000}"
cd "$(dirname "$0")/../.."
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
for target in statement_body multipart alternate_syntax; do
  mkdir -p "target/fuzz-corpus/$target"
  cp tests/fuzz/seeds/"$target"/* "target/fuzz-corpus/$target/"
  log="target/fuzz-$target.log"
  cargo +nightly fuzz run --fuzz-dir tests/fuzz "$target" "target/fuzz-corpus/$target" -- \
    -runs="$runs" -max_len=8192 -print_final_stats=1 >"$log" 2>&1 || { tail -40 "$log"; exit 1; }
  echo "$target: $(grep -m1 -o 'stat::number_of_executed_units: [0-9]*' "$log" | awk '{print $2}') executions, no crash"
done
