#!/usr/bin/env bash
# Builds and runs the trace-reader fuzzer on stable Rust, without cargo-fuzz:
# the same SanitizerCoverage instrumentation cargo-fuzz uses (no ASan, which
# would need nightly; the reader is `#![deny(unsafe_code)]`).
#   fuzz/run.sh [SECONDS]     (default 60)
# New inputs go to a scratch copy of the seed corpus, so the committed seeds
# stay small; crashes are written to fuzz/artifacts/.
set -euo pipefail
cd "$(dirname "$0")"
secs="${1:-60}"
target="$(rustc -vV | sed -n 's/^host: //p')"
RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions -Coverflow-checks" \
  cargo build --release --target "$target" --bin read_trace
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
cp corpus/read_trace/* "$scratch"/
mkdir -p artifacts
"./target/$target/release/read_trace" "$scratch" -max_total_time="$secs" \
  -rss_limit_mb=1024 -max_len=65536 -artifact_prefix=artifacts/
