#!/usr/bin/env bash
# Key verification cost in the gateway: CPU µs per request on a route with auth = ["api_key"]
# against the same route public, in one run (wrk, same upstream, inspection and access log off).
#
#   bench/keys.sh              # DURATION=10s CONNS=64 REPEAT=3
#   DURATION=2s REPEAT=1 bench/keys.sh   # a quick check
# The binary is built into $CARGO_TARGET_DIR (default target/); PORTCULLIS_BIN=path skips the
# build and uses that binary.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
source "$here/lib.sh"
DURATION=${DURATION:-10s}
CONNS=${CONNS:-64}

need_pkg wrk wrk
need_pkg nginx nginx

setup_work

UP=18281; PC=18282
build_portcullis

head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$work/pepper"
{
  pc_config $PC $UP
  printf '[store]\nurl = "sqlite://%s/keys.db"\npepper = "file:%s/pepper"\n' "$work" "$work"
  pc_route public /public/ "${bare_route[@]}"
  pc_route keyed /keyed/ 'auth = ["api_key"]' 'scopes = ["bench"]' 'inspect = { mode = "off" }'
} > "$work/gw.toml"
"$bin" identities create -c "$work/gw.toml" --name bench >/dev/null
key=$("$bin" keys create -c "$work/gw.toml" --identity bench --scopes bench --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["key"])')

start_upstream $UP
start_on $PC "$work/pc.err" "$bin" serve -c "$work/gw.toml"; pc_pid=$started_pid

cat > "$work/key.lua" <<LUA
wrk.headers["Authorization"] = "Bearer $key"
LUA
echo
echo "wrk -t2 -c$CONNS -d$DURATION, $(nproc) cores, $(date -u +%Y-%m-%dT%H:%MZ)"
echo
echo "| route | requests/s | p50 | p99 | gateway CPU µs/request, median (all runs) | RSS MB | errors |"
echo "|---|---:|---:|---:|---:|---:|---|"
PIDS_FOR_RSS=("$pc_pid")
measure 'public (auth = ["none"])' "http://127.0.0.1:$PC/public/x" "$pc_pid"
WRK_SCRIPT="$work/key.lua" measure 'api_key + scopes' "http://127.0.0.1:$PC/keyed/x" "$pc_pid"

# Gateway start time and memory with many keys in the store: KEYS=1000000 bench/keys.sh
if [ -n "${KEYS:-}" ]; then
  kill "$pc_pid"; wait "$pc_pid" 2>/dev/null || true
  (cd "$root" && cargo build --release --locked -q -p portcullis-store --example bulk_keys)
  big="$work/big"; mkdir -p "$big"
  "$target/release/examples/bulk_keys" "sqlite://$big/keys.db" "$(cat "$work/pepper")" "$KEYS" 2>/dev/null
  sed "s|sqlite://$work/keys.db|sqlite://$big/keys.db|; s|127.0.0.1:$PC|127.0.0.1:$((PC + 1))|; s|127.0.0.1:$((PC + 1000))|127.0.0.1:$((PC + 1001))|" \
    "$work/gw.toml" > "$big/gw.toml"
  empty_rss=$(awk '/^VmRSS:/ {print $2}' /proc/self/status)
  start=$(date +%s.%N)
  "$bin" serve -c "$big/gw.toml" 2>"$big/serve.err" & pids+=($!); big_pid=$!
  while ! grep -q "listening on" "$big/serve.err" 2>/dev/null; do
    kill -0 "$big_pid" 2>/dev/null || { cat "$big/serve.err" >&2; exit 1; }
    sleep 0.05
  done
  end=$(date +%s.%N)
  rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$big_pid/status")
  echo
  echo "| keys in the store | gateway start (s) | RSS (MB) | RSS per key (B) |"
  echo "|---:|---:|---:|---:|"
  awk -v n="$KEYS" -v s="$start" -v e="$end" -v r="$rss" 'BEGIN { printf "| %d | %.1f | %.0f | %.0f |\n", n, e - s, r / 1024, (r - 9000) * 1024 / n }'
  : "$empty_rss"
fi
