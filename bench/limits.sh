#!/usr/bin/env bash
# Rate-limit cost: the same wrk load, in one run, on loopback, against
#   portcullis  plain          public route, no limit (the baseline)
#   portcullis  local allow    one local limit that never refuses (rate = "1000000000/s", by = "ip")
#   portcullis  redis allow    the same limit on the Redis backend (a redis-server of its own)
#   portcullis  reject         rate = "1/m", burst = 1, by = "ip": nearly every request is a 429
#   nginx       plain          proxy_pass with a keep-alive upstream pool
#   nginx       limit allow    limit_req that never refuses
#   nginx       reject         limit_req rate=1r/m burst=1 nodelay, limit_req_status 429
# plus the raw Redis round trip (redis-benchmark, one client: PING and the gateway's GCRA script).
#
# CPU per request is utime+stime (/proc/PID/stat) of the proxy (every nginx process) divided by
# the requests wrk completed; the Redis row also reports redis-server's CPU per request. Runs are
# interleaved (round r runs every scenario once), so drift on this shared machine hits every
# scenario alike; each figure is the median of REPEAT runs, column by column, and the
# differences printed at the end are differences of those medians. Non-2xx and socket errors
# are totals over every run: the allowing rows must show 0, the refusing rows nearly all (the
# 1/m limit lets one request through per minute of the run).
#
#   bench/limits.sh                      # DURATION=10s CONNS=64 REPEAT=3: about 4 minutes
#   DURATION=3s REPEAT=1 bench/limits.sh # a quick check
# The binary is built into $CARGO_TARGET_DIR (default target/); PORTCULLIS_BIN=path skips the
# build and uses that binary.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
source "$here/lib.sh"
DURATION=${DURATION:-10s}
CONNS=${CONNS:-${CONNECTIONS:-64}}
REPEAT=${REPEAT:-3}

need_pkg wrk wrk
need_pkg nginx nginx
need_pkg redis-server redis-server
need_pkg redis-benchmark redis-tools

setup_work

UP=18481; PC=18482; PCR=18483; NGX=18484; NGXA=18485; NGXR=18486; RDS=18487

build_portcullis

# --- upstream, nginx ---------------------------------------------------------------------
# nginx's limit_req drains the bucket by rate × elapsed whole milliseconds, so requests that
# arrive in the same millisecond pile up even at a huge rate: the allowing zone needs a burst
# above the requests per millisecond (~100 here) to refuse nothing. The run counts non-2xx.
{ nginx_main ngx auto
  cat <<CONF
http {
  access_log off;
  keepalive_requests 1000000;
  upstream backend { server 127.0.0.1:$UP; keepalive 256; keepalive_requests 1000000; }
  limit_req_zone \$binary_remote_addr zone=allow:10m rate=100000000r/s;
  limit_req_zone \$binary_remote_addr zone=z:10m rate=1r/m;
  limit_req_status 429;
  proxy_http_version 1.1;
  proxy_set_header Connection "";
  proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
  server { listen 127.0.0.1:$NGX;  location / { proxy_pass http://backend; } }
  server { listen 127.0.0.1:$NGXA; location / { limit_req zone=allow burst=100000 nodelay; proxy_pass http://backend; } }
  server { listen 127.0.0.1:$NGXR; location / { limit_req zone=z burst=1 nodelay; proxy_pass http://backend; } }
}
CONF
} > "$work/ngx.conf"

# --- portcullis: one gateway on the local backend, one on Redis --------------------------
gateway_conf() { # port limits-section
  pc_config "$1" $UP
  printf '%s\n' "$2"
  pc_route plain /plain/ "${bare_route[@]}"
  pc_route allow /allow/ "${bare_route[@]}" 'limit = { rate = "1000000000/s", by = "ip" }'
  pc_route reject /reject/ "${bare_route[@]}" 'limit = { rate = "1/m", burst = 1, by = "ip" }'
}
gateway_conf $PC '' > "$work/local.toml"
gateway_conf $PCR "[limits]
backend = \"redis://127.0.0.1:$RDS\"
on_backend_error = \"local\"
timeout = \"50ms\"" > "$work/redis.toml"
"$bin" check -c "$work/local.toml" >/dev/null

# A redis-server of our own: its PID gives its CPU, and no other user shares it.
start_on $RDS "$work/redis.stderr" redis-server --bind 127.0.0.1 --port $RDS --save '' \
  --appendonly no --logfile "$work/redis.log" --dir "$work"
redis_pid=$started_pid

redis_ok=1; redis_note=""
if ! check_out=$("$bin" check -c "$work/redis.toml" 2>&1); then
  redis_ok=0
  if grep -qi "not available" <<<"$check_out"; then
    redis_note="redis backend: not available in this build"
  else
    redis_note="redis backend: config refused by portcullis check: $(tr '\n' ' ' <<<"$check_out")"
  fi
fi

start_upstream $UP
start_on $NGX "$work/ngx.log" nginx -c "$work/ngx.conf"; ngx_pid=$started_pid
start_on $PC "$work/local.err" "$bin" serve -c "$work/local.toml"; pc_pid=$started_pid
if [ "$redis_ok" = 1 ]; then
  if start_on $PCR "$work/redis.err" "$bin" serve -c "$work/redis.toml" 2>/dev/null; then
    pcr_pid=$started_pid
  else
    redis_ok=0; redis_note="redis backend: gateway did not start: $(tail -n 3 "$work/redis.err" | tr '\n' ' ')"
  fi
fi

# --- measuring ---------------------------------------------------------------------------
to_us() { # wrk latency (512.00us, 1.30ms, 1.02s) -> µs
  awk -v v="$1" 'BEGIN { n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
    if (u == "ms") n *= 1000; else if (u == "s") n *= 1e6; else if (u == "m") n *= 6e7; printf "%.1f", n }'
}

# One wrk run while reading the CPU of the proxy PIDs and of redis-server. Appends
# "cpu_us redis_cpu_us rps p50_us p99_us requests non2xx socket_errors" to $work/runs/NAME.
run_once() { # name url pid...
  local name=$1 url=$2; shift 2
  local hz; hz=$(getconf CLK_TCK)
  local b r_b a r_a out
  b=$(cpu_ticks "$@"); r_b=$(cpu_ticks "$redis_pid")
  out=$(wrk -t2 -c"$CONNS" -d"$DURATION" --latency "$url")
  a=$(cpu_ticks "$@"); r_a=$(cpu_ticks "$redis_pid")
  echo "$out" > "$work/runs/$name.last"
  local requests rps p50 p99 non2xx sockerr
  read -r requests rps p50 p99 < <(wrk_figures <<<"$out")
  p50=$(to_us "$p50"); p99=$(to_us "$p99")
  non2xx=$(awk '/Non-2xx/ {print $NF}' <<<"$out"); non2xx=${non2xx:-0}
  sockerr=$(awk '/Socket errors/ { s = 0; for (i = 1; i <= NF; i++) if ($i ~ /^[0-9]+,?$/) s += $i + 0; print s }' <<<"$out")
  awk -v t=$((a - b)) -v rt=$((r_a - r_b)) -v hz="$hz" -v n="${requests:-0}" -v rps="$rps" \
    -v p50="$p50" -v p99="$p99" -v bad="$non2xx" -v se="${sockerr:-0}" 'BEGIN {
      if (n == 0) n = 1
      printf "%.2f %.2f %s %s %s %d %d %d\n", t / hz * 1e6 / n, rt / hz * 1e6 / n, rps, p50, p99, n, bad, se }' \
    >> "$work/runs/$name"
}

median() { # column file
  awk -v c="$1" '{print $c}' "$2" | sort -g | awk '{ v[NR] = $1 } END { printf "%s", (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
total() { awk -v c="$1" '{ t += $c } END { printf "%d", t }' "$2"; }
all_runs() { awk -v c="$1" '{print $c}' "$2" | paste -sd/; }

scenarios=()
declare -A url pidlist label
add() { # key label url pid...
  local key=$1; label[$key]=$2; url[$key]=$3; shift 3; pidlist[$key]="$*"; scenarios+=("$key")
}
add pc_plain  "portcullis, no limit" "http://127.0.0.1:$PC/plain/x" "$pc_pid"
add pc_local  "portcullis, one local limit (allows)" "http://127.0.0.1:$PC/allow/x" "$pc_pid"
[ "$redis_ok" = 1 ] &&
  add pc_redis "portcullis, same limit on Redis (allows)" "http://127.0.0.1:$PCR/allow/x" "$pcr_pid"
add pc_reject "portcullis, limit refusing (429)" "http://127.0.0.1:$PC/reject/x" "$pc_pid"
ngx_pids=$(pid_tree "$ngx_pid" | tr '\n' ' ')
add ngx_plain  "nginx, no limit" "http://127.0.0.1:$NGX/x" $ngx_pids
add ngx_allow  "nginx, limit_req (allows)" "http://127.0.0.1:$NGXA/x" $ngx_pids
add ngx_reject "nginx, limit_req refusing (429)" "http://127.0.0.1:$NGXR/x" $ngx_pids

mkdir -p "$work/runs"
for s in "${scenarios[@]}"; do
  wrk -t2 -c"$CONNS" -d2s "${url[$s]}" >/dev/null   # warm-up: connections, pools, buckets
  : > "$work/runs/$s"
done
[ "$redis_ok" = 1 ] && redis-cli -p $RDS config resetstat >/dev/null
for _ in $(seq 1 "$REPEAT"); do
  for s in "${scenarios[@]}"; do
    # shellcheck disable=SC2086
    run_once "$s" "${url[$s]}" ${pidlist[$s]}
  done
done

# Raw Redis round trip, one client: PING, then the gateway's own script through EVALSHA.
rtt_ping=""; rtt_gcra=""
rtt() { awk -F'p50=' '/p50=/ { split($2, a, " "); printf "%.0f", a[1] * 1000 }' | tail -n 1; }
evalsha_calls=""
if [ "$redis_ok" = 1 ]; then
  evalsha_calls=$(redis-cli -p $RDS info commandstats | awk -F'[=,:]' '/^cmdstat_evalsha:/ {print $3}')
fi
rtt_ping=$(redis-benchmark -p $RDS -c 1 -n 20000 -t ping -q 2>/dev/null | tr '\r' '\n' | grep MBULK | rtt)
sha=$(redis-cli -p $RDS script load "$(cat "$root/crates/portcullis-limit/src/gcra.lua")" 2>/dev/null || true)
if [ -n "$sha" ]; then
  rtt_gcra=$(redis-benchmark -p $RDS -c 1 -n 20000 -q evalsha "$sha" 1 bench:rtt 1 1000000 1000000 '' take 2>/dev/null |
    tr '\r' '\n' | rtt)
fi

# --- report ------------------------------------------------------------------------------
echo
echo "wrk -t2 -c$CONNS -d$DURATION, $REPEAT run(s) per row, $(nproc) cores, $(date -u +%Y-%m-%dT%H:%MZ)"
echo
echo "| scenario | requests/s | CPU µs/req, median (all runs) | redis-server CPU µs/req | p50 ms | p99 ms | non-2xx / requests, all runs | socket errors, all runs |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|"
declare -A cpu rcpu p50 p99
for s in "${scenarios[@]}"; do
  f="$work/runs/$s"
  cpu[$s]=$(median 1 "$f"); rcpu[$s]=$(median 2 "$f"); p50[$s]=$(median 4 "$f"); p99[$s]=$(median 5 "$f")
  r="-"; [ "$s" = pc_redis ] && r=${rcpu[$s]}
  printf '| %s | %s | %s (%s) | %s | %.2f | %.2f | %s / %s | %s |\n' "${label[$s]}" "$(median 3 "$f")" \
    "${cpu[$s]}" "$(all_runs 1 "$f")" "$r" "$(awk -v v="${p50[$s]}" 'BEGIN{print v/1000}')" \
    "$(awk -v v="${p99[$s]}" 'BEGIN{print v/1000}')" "$(total 7 "$f")" "$(total 6 "$f")" "$(total 8 "$f")"
done
[ -z "$redis_note" ] || { echo; echo "$redis_note"; }
echo
d() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%+.2f", a - b }'; }
ms() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%+.3f", (a - b) / 1000 }'; }
echo "added by one local limit: $(d "${cpu[pc_local]}" "${cpu[pc_plain]}") µs/req (target ≤ 0.5 µs)"
if [ "$redis_ok" = 1 ]; then
  echo "added by the Redis backend (vs the local limit): $(d "${cpu[pc_redis]}" "${cpu[pc_local]}") µs/req gateway CPU" \
    "+ ${rcpu[pc_redis]} µs/req redis-server CPU; p50 $(ms "${p50[pc_redis]}" "${p50[pc_local]}") ms," \
    "p99 $(ms "${p99[pc_redis]}" "${p99[pc_local]}") ms"
  echo "  (redis-server ran ${evalsha_calls:-0} EVALSHA in the measured runs)"
else
  echo "added by the Redis backend: - ($redis_note)"
fi
echo "Redis round trip (redis-benchmark, 1 client, p50): PING ${rtt_ping:--} µs, GCRA script (EVALSHA) ${rtt_gcra:--} µs"
echo "429 path: portcullis ${cpu[pc_reject]} µs/req vs nginx ${cpu[ngx_reject]} µs/req"
echo "nginx limit_req allowing adds $(d "${cpu[ngx_allow]}" "${cpu[ngx_plain]}") µs/req"
