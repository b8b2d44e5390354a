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
base_rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$pc_pid/status")   # one key, before any load

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

# Gateway start time and memory with many keys in the store, and how long one change takes to
# reach it: KEYS=1000000 bench/keys.sh. IDENTITIES=N spreads the keys over N identities
# (default 1); KEYS_DATABASE_URL=postgres://... uses a throw-away schema on that server
# instead of a SQLite file.
if [ -n "${KEYS:-}" ]; then
  kill "$pc_pid"; wait "$pc_pid" 2>/dev/null || true
  (cd "$root" && cargo build --release --locked -q -p portcullis-store --example bulk_keys)
  big="$work/big"; mkdir -p "$big"
  if [ -n "${KEYS_DATABASE_URL:-}" ]; then
    need_pkg psql postgresql-client
    schema="pc_bench_keys_$$"
    psql -q "$KEYS_DATABASE_URL" -c "CREATE SCHEMA $schema"
    trap 'psql -q "$KEYS_DATABASE_URL" -c "DROP SCHEMA $schema CASCADE" >/dev/null 2>&1; cleanup_work' EXIT
    sep='?'; case $KEYS_DATABASE_URL in *\?*) sep='&' ;; esac
    store_url="$KEYS_DATABASE_URL${sep}options=-c%20search_path%3D$schema"
    store_name="PostgreSQL"
  else
    store_url="sqlite://$big/keys.db"
    store_name="SQLite"
  fi
  echo "filling the store with $KEYS keys" >&2
  "$target/release/examples/bulk_keys" "$store_url" "$(cat "$work/pepper")" "$KEYS" "${IDENTITIES:-1}" 2>/dev/null
  sed "s|sqlite://$work/keys.db|$store_url|; s|127.0.0.1:$PC\"|127.0.0.1:$((PC + 2))\"|; s|127.0.0.1:$((PC + 1000))|127.0.0.1:$((PC + 1002))|" \
    "$work/gw.toml" > "$big/gw.toml"
  "$bin" identities create -c "$big/gw.toml" --name probe >/dev/null
  start=$(date +%s.%N)
  "$bin" serve -c "$big/gw.toml" 2>"$big/serve.err" & pids+=($!); big_pid=$!
  while ! grep -q "listening on" "$big/serve.err" 2>/dev/null; do
    kill -0 "$big_pid" 2>/dev/null || { cat "$big/serve.err" >&2; exit 1; }
    sleep 0.02
  done
  end=$(date +%s.%N)
  rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$big_pid/status")

  # One change with a million keys in the index: a key created by a separate CLI process, then
  # revoked; how long until the running gateway accepts it, then refuses it.
  url="http://127.0.0.1:$((PC + 2))/keyed/x"
  until_status() { # want key -> seconds waited
    local want=$1 key=$2 t0 code; t0=$(date +%s.%N)
    for _ in $(seq 1 1000); do
      code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $key" "$url")
      [ "$code" = "$want" ] && { awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }'; return; }
      sleep 0.01
    done
    echo "never"
  }
  created=$("$bin" keys create -c "$big/gw.toml" --identity probe --scopes bench --json)
  probe_key=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["key"])' "$created")
  probe_id=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["id"])' "$created")
  seen_create=$(until_status 200 "$probe_key")
  "$bin" keys revoke -c "$big/gw.toml" "$probe_id" >/dev/null
  seen_revoke=$(until_status 401 "$probe_key")

  echo
  echo "| store | keys | identities | gateway start (s) | RSS (MB) | RSS above the gateway with one key, per key (B) | new key accepted after (s) | revoked key refused after (s) |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|"
  awk -v st="$store_name" -v n="$KEYS" -v i="${IDENTITIES:-1}" -v s="$start" -v e="$end" -v r="$rss" -v b="$base_rss" \
    -v c="$seen_create" -v v="$seen_revoke" \
    'BEGIN { printf "| %s | %d | %d | %.1f | %.0f | %.0f | %s | %s |\n", st, n, i, e - s, r / 1024, (r - b) * 1024 / n, c, v }'
fi
