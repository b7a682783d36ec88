#!/usr/bin/env bash
# Coverage-guided fuzzing of every parser of untrusted input (see fuzz/).
# Builds the targets with libFuzzer's coverage instrumentation on the stable
# toolchain, then runs each for FUZZ_SECONDS (default 20) from the checked-in
# seeds (fuzz/seeds, written by fuzz/seed.py from the protocol fixtures and
# example resources) and what earlier runs on this machine found
# (target/fuzz/corpus, where new inputs go; the checkout is never written).
#   scripts/fuzz.sh                  every target, 20 s each
#   FUZZ_SECONDS=600 scripts/fuzz.sh stream request   two targets, 10 min each
# A finding stops the run: the input is kept under target/fuzz/artifacts/ and
# printed in base64; replay it with `target/fuzz/<triple>/release/<target> <file>`.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${FUZZ_SECONDS:-20}
triple=$(rustc -vV | sed -n 's/^host: //p')
out=$PWD/target/fuzz
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(request response stream glob duration manifest)

# --target keeps the instrumentation off build scripts and proc macros
RUSTFLAGS="--cfg fuzzing -Cpasses=sancov-module \
  -Cllvm-args=-sanitizer-coverage-level=4 \
  -Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
  -Cllvm-args=-sanitizer-coverage-pc-table \
  -Cllvm-args=-sanitizer-coverage-trace-compares" \
  cargo build --quiet --release --locked --manifest-path fuzz/Cargo.toml \
  --target "$triple" --target-dir "$out"

for t in "${targets[@]}"; do
  corpus=$out/corpus/$t
  artifacts=$out/artifacts/$t/
  mkdir -p "$corpus" "$artifacts"
  echo "==> fuzzing $t for ${seconds}s"
  if ! "$out/$triple/release/$t" "$corpus" "fuzz/seeds/$t" \
      -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
      -artifact_prefix="$artifacts" -print_final_stats=1 >"$out/$t.log" 2>&1; then
    tail -n 40 "$out/$t.log"
    for f in "$artifacts"*; do
      [ -f "$f" ] && { echo "finding: $f"; base64 -w0 "$f"; echo; }
    done
    exit 1
  fi
  grep -E '^stat::number_of_executed_units|^#[0-9]+.*DONE' "$out/$t.log" | tail -n 2
done
