#!/usr/bin/env bash
# Runs each fuzz target briefly: `bash fuzz/run.sh [SECONDS [CARGO-FUZZ FLAGS…]]`
# (default 20 s per target; CI passes `--dev` for a quicker, unoptimised build). Uses the stable toolchain (no sanitizer, `-s none`); installs
# cargo-fuzz when missing. A crash fails the script and leaves its input under
# fuzz/artifacts/<target>/.
set -euo pipefail
cd "$(dirname "$0")"

SECONDS_PER_TARGET="${1:-${FUZZ_SECONDS:-20}}"
shift || true
CARGO_FUZZ_VERSION=0.13.1

if ! cargo fuzz --version 2>/dev/null | grep -q "$CARGO_FUZZ_VERSION"; then
  cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked
fi

for target in frame_decoder agent_bodies; do
  mkdir -p "corpus/$target"
  echo "fuzzing $target for ${SECONDS_PER_TARGET} s"
  cargo fuzz run -s none "$@" "$target" "corpus/$target" -- \
    -max_total_time="$SECONDS_PER_TARGET" -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1
done
