#!/usr/bin/env bash
# What inspection costs a gateway per request (issue #5: ≤ 3 µs added for a typical GET,
# ≤ 15 µs for a POST with a 2 KB JSON body), and what ModSecurity costs Apache for the same
# requests. In one run, on loopback, with the same wrk load and the same upstream:
#   portcullis  off        route with inspect = { mode = "off" }
#   portcullis  block      route with inspect = { mode = "block" } (default sensitivity)
#   apache      plain      mod_proxy reverse proxy, mpm_event, no ModSecurity
#   apache      modsec     the same + ModSecurity 2 + OWASP CRS at paranoia level 1 (Debian's
#                          recommended modsecurity.conf: JSON/XML body parsers on, SecRuleEngine
#                          On, audit log off)
# each sent the two requests of crates/portcullis-inspect/examples/engine_bench.rs:
#   GET   /v1/customers/…/orders, 3 query parameters (a UUID, a name with an apostrophe, a sort
#         key), 10 headers (Host, User-Agent, Accept, Accept-Language, Accept-Encoding, a JWT
#         bearer Authorization, Referer, Origin, X-Request-Id, Cookie)
#   POST  /v1/orders, the same headers less Cookie plus Content-Type: application/json, and a
#         ~1.8 KB (1830 B) order in JSON with free text (addresses, delivery notes, a gift message)
# (wrk Lua scripts send them; the same files feed a curl probe of each target first).
#
# CPU per request is utime+stime (/proc/PID/stat) of the proxy's processes divided by the
# requests wrk completed: for Apache the parent and every child, plus the CPU of children that
# exited during the run (the parent's cutime+cstime), so a recycled child loses nothing. Runs
# are interleaved (round r runs every row once) so that drift on a shared machine hits every
# row alike; each figure is the median of REPEAT runs, column by column; the added cost is the
# difference of the medians, with the per-round differences shown beside it. A typical request
# must pass: the table counts wrk's error responses (status ≥ 400) over all runs, and the probe
# prints each target's status for each request; a block is a finding and is reported as such.
#
#   bench/inspect_cost.sh                       # DURATION=10s CONNS=64 REPEAT=3: ~5 minutes
#   DURATION=5s REPEAT=3 bench/inspect_cost.sh
# Installs wrk, nginx, apache2, libapache2-mod-security2 and modsecurity-crs with apt when
# missing. The binary is built into $CARGO_TARGET_DIR (default target/); PORTCULLIS_BIN=path
# skips the build and uses that binary.
# shellcheck source-path=SCRIPTDIR
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
# shellcheck source=lib.sh
source "$here/lib.sh"
DURATION=${DURATION:-10s}
CONNS=${CONNS:-64}
REPEAT=${REPEAT:-3}

need_pkg wrk wrk
need_pkg nginx nginx
need_pkg curl curl
need_pkg apache2 apache2
[ -f /usr/lib/apache2/modules/mod_security2.so ] || need_pkg __none__ libapache2-mod-security2
[ -d /usr/share/modsecurity-crs/rules ] || need_pkg __none__ modsecurity-crs

setup_work

UP=18581; PCOFF=18582; PCON=18583; AP=18584; APMS=18585

build_portcullis

# --- the two requests --------------------------------------------------------------------
# Header lines "Name: value", one file per request; the Lua scripts and curl read the same files.
jwt="Bearer eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCIsImtpZCI6IjE2YzNkNGQ1In0.\
eyJzdWIiOiI3ZjNjMmE5MC0xYjZlLTRjOGEtOWQyZi0wZTVhNmI3YzhkOTEiLCJuYW1lIjoiU2lvYmhhbiBPJ0JyaWVuIiw\
iaXNzIjoiaHR0cHM6Ly9hdXRoLmV4YW1wbGUuY29tLyIsImF1ZCI6Im9yZGVycyIsImlhdCI6MTcxNjIzOTAyMiwiZXhwIj\
oxNzE2MjQyNjIyLCJzY29wZSI6Im9yZGVyczpyZWFkIG9yZGVyczp3cml0ZSJ9.\
Q2hhbmdlTWVDaGFuZ2VNZUNoYW5nZU1lQ2hhbmdlTWVDaGFuZ2VNZUNoYW5nZU1lQ2hhbmdlTWVDaGFuZ2VNZQ"
common_headers() {
  cat <<HDR
Host: api.shop.example.com
User-Agent: Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36
Accept: application/json, text/plain, */*
Accept-Language: en-GB,en;q=0.9,fr;q=0.8
Accept-Encoding: gzip, deflate, br
Authorization: $jwt
Referer: https://www.shop.example.com/orders?page=2&sort=recent
Origin: https://www.shop.example.com
X-Request-Id: 5b1e8f3c-2d4a-4f6b-9c7e-1a2b3c4d5e6f
HDR
}
{ common_headers; echo "Cookie: session=7f3c2a901b6e4c8a9d2f0e5a6b7c8d91; lang=en-GB; theme=dark"; } > "$work/get.headers"
{ common_headers; echo "Content-Type: application/json"; } > "$work/post.headers"
get_path="/v1/customers/7f3c2a90-1b6e-4c8a-9d2f-0e5a6b7c8d91/orders?customer_id=7f3c2a90-1b6e-4c8a-9d2f-0e5a6b7c8d91&q=O%27Brien%20garden%20chairs&sort=created_at"
post_path="/v1/orders"
# The order of engine_bench.rs, one line, no trailing newline.
sed 's/^ *//' <<'JSON' | tr -d '\n' > "$work/post.json"
{"order_id": "3e9b1f4c-7a2d-4c1e-8f5b-6d0a9c2e7b14",
  "customer": {"id": "7f3c2a90-1b6e-4c8a-9d2f-0e5a6b7c8d91", "name": "Siobhan O'Brien",
    "email": "siobhan.obrien@example.org", "phone": "+353 1 555 0192",
    "address": {"line1": "14 St. Stephen's Green", "line2": "Apt. 3B", "city": "Dublin",
      "postcode": "D02 XY45", "country": "IE"}},
  "items": [
    {"sku": "CHR-1042-GRN", "name": "Garden chair (set of 2)", "qty": 2, "price": 89.99,
      "note": "Please select the green ones if possible - the grey didn't match last time."},
    {"sku": "TBL-220-OAK", "name": "Oak table, 120cm", "qty": 1, "price": 349.0,
      "note": "Gift: leave the receipt out & wrap it if you can :)"},
    {"sku": "CSH-7-BLU", "name": "Seat cushion \"Harbour\" blue", "qty": 4, "price": 12.5,
      "note": null}],
  "delivery": {"slot": "2024-06-14T09:00:00+01:00",
    "instructions": "Ring twice; if nobody answers, leave it with the neighbour at no. 16 (the one with the red door). Don't leave it by the bins!",
    "tracking_url": "https://track.parcels.example.com/t/IE1234567890?lang=en"},
  "payment": {"method": "card", "token": "tok_1PKq2eLkdIwHu7ixW3tJ9aZb",
    "billing_same_as_shipping": true},
  "coupon": "SUMMER-24",
  "comment": "Loved the last order <3 Could you drop-down the delivery window to the morning? We're usually out from 1pm to 6pm, so before noon works best. Thanks a million, and select a plan for the extended warranty on the table if there's one on offer - 2 or 3 years is fine.",
  "metadata": {"source": "web", "campaign": "newsletter_2024_06", "ab_bucket": "B",
    "user_agent_hint": "Chrome 124 on macOS",
    "referrer": "https://www.google.com/search?q=oak+garden+table"},
  "gift_message": "Happy anniversary, Tom & Mary! Here's to 25 more years. Love, Aoife, Ciarán and the kids.",
  "tags": ["garden", "summer", "priority", "gift"],
  "consent": {"marketing": false, "terms_version": "2024-03-01"}}
JSON

# wrk builds each request once per connection from wrk.method/path/headers/body; it adds
# Content-Length when there is a body.
lua_script() { # method path headers-file [body-file]
  cat <<LUA
wrk.method = "$1"
wrk.path = "$2"
wrk.headers = {}
for line in io.lines("$3") do
  local name, value = line:match("^([^:]+): (.*)$")
  wrk.headers[name] = value
end
LUA
  [ $# -lt 4 ] || cat <<LUA
local f = assert(io.open("$4", "rb"))
wrk.body = f:read("*a")
f:close()
LUA
}
lua_script GET "$get_path" "$work/get.headers" > "$work/get.lua"
lua_script POST "$post_path" "$work/post.headers" "$work/post.json" > "$work/post.lua"

# --- upstream, portcullis ----------------------------------------------------------------
start_upstream $UP
{ pc_config $PCOFF $UP; pc_route all / 'auth = ["none"]' 'inspect = { mode = "off" }'; } > "$work/pc-off.toml"
{ pc_config $PCON $UP; pc_route all / 'auth = ["none"]' 'inspect = { mode = "block" }'; } > "$work/pc-on.toml"
start_on $PCOFF "$work/pc-off.err" "$bin" serve -c "$work/pc-off.toml"; pcoff_pid=$started_pid
start_on $PCON "$work/pc-on.err" "$bin" serve -c "$work/pc-on.toml"; pcon_pid=$started_pid

# --- apache, without and with ModSecurity ------------------------------------------------
# A fixed set of children (2 × 64 threads, none reaped for being spare) so that the same
# processes serve every run; keep-alive to wrk and to the upstream.
modules=/usr/lib/apache2/modules
apache_conf() { # port name extra
  cat <<CONF
ServerRoot /etc/apache2
ServerName localhost
Listen 127.0.0.1:$1
PidFile $work/$2.pid
ErrorLog $work/$2.err
LogLevel crit
LoadModule mpm_event_module $modules/mod_mpm_event.so
LoadModule authz_core_module $modules/mod_authz_core.so
LoadModule proxy_module $modules/mod_proxy.so
LoadModule proxy_http_module $modules/mod_proxy_http.so
User www-data
Group www-data
StartServers 2
ServerLimit 2
ThreadLimit 64
ThreadsPerChild 64
MaxRequestWorkers 128
MinSpareThreads 64
MaxSpareThreads 128
MaxConnectionsPerChild 0
KeepAlive On
MaxKeepAliveRequests 0
KeepAliveTimeout 60
$3
ProxyPass "/" "http://127.0.0.1:$UP/"
CONF
}
# Debian's recommended modsecurity.conf, in blocking mode, audit log off, its files here.
sed -e 's/^SecRuleEngine .*/SecRuleEngine On/' -e 's/^SecAuditEngine .*/SecAuditEngine Off/' \
  -e "s|^SecAuditLog .*|SecAuditLog $work/modsec_audit.log|" \
  -e "s|^SecTmpDir .*|SecTmpDir $work|" -e "s|^SecDataDir .*|SecDataDir $work|" \
  -e 's|^SecUnicodeMapFile unicode.mapping|SecUnicodeMapFile /etc/modsecurity/unicode.mapping|' \
  /etc/modsecurity/modsecurity.conf-recommended > "$work/modsecurity.conf"
cp /etc/modsecurity/crs/crs-setup.conf "$work/crs-setup.conf"
echo 'SecAction "id:900000,phase:1,nolog,pass,t:none,setvar:tx.paranoia_level=1"' >> "$work/crs-setup.conf"
apache_conf $AP apache "" > "$work/apache.conf"
apache_conf $APMS modsec "LoadModule unique_id_module $modules/mod_unique_id.so
LoadModule security2_module $modules/mod_security2.so
Include $work/modsecurity.conf
Include $work/crs-setup.conf
Include /usr/share/modsecurity-crs/rules/*.conf" > "$work/modsec.conf"
chown www-data "$work" 2>/dev/null || true
start_on $AP "$work/apache.log" apache2 -f "$work/apache.conf" -DFOREGROUND; ap_pid=$started_pid
start_on $APMS "$work/modsec.log" apache2 -f "$work/modsec.conf" -DFOREGROUND; apms_pid=$started_pid

# --- measuring ---------------------------------------------------------------------------
# CPU ticks of a process, its live children, and its children that have exited and been
# reaped (cutime+cstime: Apache may replace a child during a run).
tree_ticks() { # pid
  local total rest child
  # Fields 14-17 (utime stime cutime cstime), counted after the ")" that ends the name.
  rest=$(sed 's/^.*) //' "/proc/$1/stat")
  total=$(awk '{ print $12 + $13 + $14 + $15 }' <<<"$rest")
  for child in $(pgrep -P "$1" || true); do
    total=$((total + $(cpu_ticks "$child")))
  done
  echo "$total"
}

to_us() { # wrk latency (512.00us, 1.30ms, 1.02s) -> µs
  awk -v v="$1" 'BEGIN { n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
    if (u == "ms") n *= 1000; else if (u == "s") n *= 1e6; else if (u == "m") n *= 6e7; printf "%.1f", n }'
}

# One wrk run; appends "cpu_us rps p50_us p99_us requests errors socket_errors timeouts" to
# $work/runs/NAME. wrk's timeout is raised to 10 s: ModSecurity's slowest answers take over the
# default 2 s under this load, and a request wrk gives up on is not counted as completed.
run_once() { # name port lua pid
  local name=$1 port=$2 lua=$3 pid=$4
  local hz b a out requests rps p50 p99 bad sockerr timeouts
  hz=$(getconf CLK_TCK)
  b=$(tree_ticks "$pid")
  out=$(wrk -t2 -c"$CONNS" -d"$DURATION" --timeout 10s --latency -s "$lua" "http://127.0.0.1:$port")
  a=$(tree_ticks "$pid")
  echo "$out" > "$work/runs/$name.last"
  read -r requests rps p50 p99 < <(wrk_figures <<<"$out")
  p50=$(to_us "$p50"); p99=$(to_us "$p99")
  bad=$(awk '/Non-2xx/ {print $NF}' <<<"$out")
  # "Socket errors: connect 0, read 0, write 0, timeout 12": all of them, and the timeouts.
  read -r sockerr timeouts < <(awk '/Socket errors/ { for (i = 1; i <= NF; i++) if ($i ~ /^[0-9]+,?$/) s += $i + 0
    t = $NF + 0 } END { print s + 0, t + 0 }' <<<"$out")
  awk -v t=$((a - b)) -v hz="$hz" -v n="${requests:-0}" -v rps="$rps" -v p50="$p50" -v p99="$p99" \
    -v bad="${bad:-0}" -v se="$sockerr" -v to="$timeouts" 'BEGIN {
      printf "%.2f %s %s %s %d %d %d %d\n", (n ? t / hz * 1e6 / n : 0), rps, p50, p99, n, bad, se, to }' \
    >> "$work/runs/$name"
}

median() { # column file
  awk -v c="$1" '{print $c}' "$2" | sort -g | awk '{ v[NR] = $1 } END { printf "%s", (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
total() { awk -v c="$1" '{ t += $c } END { printf "%d", t }' "$2"; }
all_runs() { awk -v c="$1" '{print $c}' "$2" | paste -sd/; }

scenarios=()
declare -A port proxy_pid label
add() { # key label port pid
  scenarios+=("$1"); label[$1]=$2; port[$1]=$3; proxy_pid[$1]=$4
}
for r in get post; do
  add pc_off_$r "portcullis, inspection off" $PCOFF "$pcoff_pid"
  add pc_on_$r  "portcullis, inspection block" $PCON "$pcon_pid"
  add ap_$r     "apache, plain proxy" $AP "$ap_pid"
  add ms_$r     "apache + ModSecurity + CRS PL1" $APMS "$apms_pid"
done
request() { # key -> GET or POST
  local r=${1##*_}
  echo "${r^^}"
}

# Probe: each request once through each target, with curl from the same files.
probe() { # port headers-file path [body-file]
  local args=(-s -o /dev/null -w '%{http_code}' -H "@$2")
  [ $# -lt 4 ] || args+=(--data-binary "@$4")
  curl "${args[@]}" "http://127.0.0.1:$1$3"
}
declare -A probed
for s in "${scenarios[@]}"; do
  if [ "$(request "$s")" = GET ]; then
    probed[$s]=$(probe "${port[$s]}" "$work/get.headers" "$get_path")
  else
    probed[$s]=$(probe "${port[$s]}" "$work/post.headers" "$post_path" "$work/post.json")
  fi
done

mkdir -p "$work/runs"
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
for s in "${scenarios[@]}"; do
  wrk -t2 -c"$CONNS" -d2s --timeout 10s -s "$work/${s##*_}.lua" "http://127.0.0.1:${port[$s]}" >/dev/null   # warm-up
  : > "$work/runs/$s"
done
for _ in $(seq 1 "$REPEAT"); do
  for s in "${scenarios[@]}"; do
    run_once "$s" "${port[$s]}" "$work/${s##*_}.lua" "${proxy_pid[$s]}"
  done
done

load_after=$(cut -d' ' -f1-3 /proc/loadavg)

# --- report ------------------------------------------------------------------------------
echo
echo "wrk -t2 -c$CONNS -d$DURATION --timeout 10s, $REPEAT run(s) per row, interleaved, $(nproc) cores," \
  "$(date -u +%Y-%m-%dT%H:%MZ); POST body $(wc -c < "$work/post.json") B;" \
  "$(apache2 -v | awk -F'[ /]' '/version/ { print "Apache " $4 }'), ModSecurity $(dpkg-query -W -f '${Version}' libapache2-mod-security2 2>/dev/null || echo ?)," \
  "CRS $(dpkg-query -W -f '${Version}' modsecurity-crs 2>/dev/null || echo ?);" \
  "load average $load_before before, $load_after after"
echo
echo "| target | request | requests/s | CPU µs/req, median (all runs) | p50 ms | p99 ms | probe status | status ≥ 400 / requests, all runs | socket errors (timeouts), all runs |"
echo "|---|---|---:|---:|---:|---:|---:|---:|---:|"
declare -A cpu
for s in "${scenarios[@]}"; do
  f="$work/runs/$s"
  cpu[$s]=$(median 1 "$f")
  printf '| %s | %s | %s | %s (%s) | %.2f | %.2f | %s | %s / %s | %s (%s) |\n' "${label[$s]}" "$(request "$s")" "$(median 2 "$f")" \
    "${cpu[$s]}" "$(all_runs 1 "$f")" "$(awk -v v="$(median 3 "$f")" 'BEGIN{print v/1000}')" \
    "$(awk -v v="$(median 4 "$f")" 'BEGIN{print v/1000}')" "${probed[$s]}" \
    "$(total 6 "$f")" "$(total 5 "$f")" "$(total 7 "$f")" "$(total 8 "$f")"
done
echo
d() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%+.2f", a - b }'; }
rounds() { paste -d' ' <(awk '{print $1}' "$work/runs/$1") <(awk '{print $1}' "$work/runs/$2") |
  awk '{ printf "%s%+.2f", (NR > 1 ? "/" : ""), $1 - $2 }'; }
added() { # with without
  printf '%s µs (per round %s)' "$(d "${cpu[$1]}" "${cpu[$2]}")" "$(rounds "$1" "$2")"
}
echo "added by inspection: GET $(added pc_on_get pc_off_get) (bar 3), POST $(added pc_on_post pc_off_post) (bar 15)"
echo "added by ModSecurity + CRS PL1: GET $(added ms_get ap_get), POST $(added ms_post ap_post)"

# A typical request refused is a finding, not noise: say which target refused what.
blocked=0
for s in "${scenarios[@]}"; do
  bad=$(total 6 "$work/runs/$s")
  if [ "${probed[$s]}" != 200 ] || [ "$bad" -gt 0 ]; then
    blocked=1
    echo "REFUSED: ${label[$s]}, $(request "$s"): probe answered ${probed[$s]}, $bad responses with status ≥ 400 under load"
  fi
done
[ "$blocked" = 1 ] || echo "no typical request was refused by any target (probe 200, no status ≥ 400 under load)"
