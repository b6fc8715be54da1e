#!/usr/bin/env bash
# Run every fuzz target for N executions each (default 1,000,000) and print the counts.
# Uses the machine's stable toolchain: RUSTC_BOOTSTRAP=1 lets it take the sanitizer flags
# cargo-fuzz passes (no nightly needed). Installs cargo-fuzz if missing.
# Usage (from the repository root): bash tests/fuzz/run.sh [executions] [target …]
set -euo pipefail
runs="${1:-1000000}"
shift || true
cd "$(dirname "$0")/../.."
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
targets=("$@")
if ((${#targets[@]} == 0)); then
  targets=(statement_body multipart multipart_differential alternate_syntax query route token_peek course_structure more_cursor)
fi
export RUSTC_BOOTSTRAP=1
for target in "${targets[@]}"; do
  mkdir -p "target/fuzz-corpus/$target"
  if [ -d "tests/fuzz/seeds/$target" ]; then cp tests/fuzz/seeds/"$target"/* "target/fuzz-corpus/$target/"; fi
  log="target/fuzz-$target.log"
  cargo fuzz run --fuzz-dir tests/fuzz "$target" "target/fuzz-corpus/$target" -- \
    -runs="$runs" -max_len=8192 -print_final_stats=1 >"$log" 2>&1 || { tail -40 "$log"; exit 1; }
  echo "$target: $(grep -m1 -o 'stat::number_of_executed_units: [0-9]*' "$log" | awk '{print $2}') executions, no crash"
done
