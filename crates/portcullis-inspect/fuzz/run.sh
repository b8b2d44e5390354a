#!/usr/bin/env bash
# Runs one fuzz target on stable Rust: cargo-fuzz needs nightly flags (-Zsanitizer,
# coverage instrumentation), which RUSTC_BOOTSTRAP=1 unlocks on a stable toolchain.
#
#   ./run.sh TARGET [SECONDS] [libFuzzer flags...]     e.g. ./run.sh sqli 300
#
# The growing corpus goes to corpus/TARGET, crashes to artifacts/TARGET (both ignored);
# the committed seeds are read, never written. Set SANITIZER=none to fuzz without
# AddressSanitizer (about twice the executions per second).
set -euo pipefail
cd "$(dirname "$0")"
target=${1:?usage: run.sh TARGET [SECONDS] [libFuzzer flags...]}
seconds=${2:-60}
shift $(($# < 2 ? $# : 2))
case $target in
decode | decode_roundtrip | variants | sqli | xss | cmdi | traversal | ssrf | judge) seeds=seeds/values ;;
engine) seeds= ;;
*) seeds=seeds/$target ;;
esac
mkdir -p "corpus/$target"
# -a: debug assertions (overflow checks) on, as in the unit tests.
RUSTC_BOOTSTRAP=1 exec cargo fuzz run -a -s "${SANITIZER:-address}" "$target" "corpus/$target" $seeds -- \
  -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 "$@"
