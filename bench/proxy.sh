#!/usr/bin/env bash
# Plain reverse-proxy cost: the same wrk load, in one run, on loopback, against
#   (a) the upstream directly (nginx serving a fixed 200),
#   (b) nginx as a reverse proxy with a keep-alive upstream pool,
#   (c) Portcullis with a single route: inspection and access log off (the proxy alone), then
#       with the defaults (inspection on, JSON access log to a file),
#   (d) the floor of Portcullis' stack: crates/portcullis-proxy/examples/hyper_floor.rs, a
#       reverse proxy of bare hyper + hyper-util on the same thread-per-core runtime layout,
#   (e) the floor of a hand-written HTTP/1.1 path: crates/portcullis-proxy/examples/h1_floor.rs,
#       httparse heads and a per-thread upstream pool driven inline in the client's task.
# Reports requests/s, p50/p99, CPU µs per request of the proxy process(es)
# (utime+stime from /proc/PID/stat divided by requests served) and RSS after load.
#
#   bench/proxy.sh            # DURATION=10s CONNS=64 REPEAT=3 by default
#   DURATION=2s REPEAT=1 bench/proxy.sh   # a quick check
# The binaries are built into $CARGO_TARGET_DIR (default target/); PORTCULLIS_BIN=path skips
# the gateway's build and uses that binary.
# Each row is the median of REPEAT runs by CPU per request; every run's figure is shown.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
source "$here/lib.sh"
DURATION=${DURATION:-10s}
CONNS=${CONNS:-64}

need_pkg wrk wrk
need_pkg nginx nginx

setup_work

UP=18081; NGX=18082; PC=18083; PCLOG=18084; FLOOR=18085; H1FLOOR=18086

build_portcullis
(cd "$root" && cargo build --release --locked -q -p portcullis-proxy --example hyper_floor --example h1_floor)
floor="$target/release/examples/hyper_floor"
h1floor="$target/release/examples/h1_floor"

{ nginx_main ngx auto
  cat <<CONF
http {
  access_log off;
  keepalive_requests 1000000;
  upstream backend { server 127.0.0.1:$UP; keepalive 256; keepalive_requests 1000000; }
  server {
    listen 127.0.0.1:$NGX;
    location / {
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
    }
  }
}
CONF
} > "$work/ngx.conf"
# The plain-proxy row turns inspection off (this benchmark measures the proxy); the second
# row is the default route: inspection on, JSON access log to a file.
{ pc_config $PC $UP; pc_route all / "${bare_route[@]}"; } > "$work/pc-$PC.toml"
{ pc_config $PCLOG $UP "$work/access-$PCLOG.log"; pc_route all / 'auth = ["none"]'; } > "$work/pc-$PCLOG.toml"

start_upstream $UP
start_on $NGX "$work/ngx.log" nginx -c "$work/ngx.conf"; ngx_pid=$started_pid
start_on $PC "$work/pc.err" "$bin" serve -c "$work/pc-$PC.toml"; pc_pid=$started_pid
start_on $FLOOR "$work/floor.err" "$floor" "127.0.0.1:$FLOOR" "127.0.0.1:$UP" "$(nproc)"; floor_pid=$started_pid
start_on $H1FLOOR "$work/h1floor.err" "$h1floor" "127.0.0.1:$H1FLOOR" "127.0.0.1:$UP" "$(nproc)"; h1floor_pid=$started_pid

echo
echo "wrk -t2 -c$CONNS -d$DURATION, $(nproc) cores, $(date -u +%Y-%m-%dT%H:%MZ)"
echo
echo "| target | requests/s | p50 | p99 | proxy CPU µs/request, median (all runs) | proxy RSS MB after load | errors |"
echo "|---|---:|---:|---:|---:|---:|---|"
PIDS_FOR_RSS=()
measure "upstream direct (nginx return 200)" "http://127.0.0.1:$UP/"
PIDS_FOR_RSS=($(pid_tree "$ngx_pid"))
measure "nginx reverse proxy" "http://127.0.0.1:$NGX/" "${PIDS_FOR_RSS[@]}"
PIDS_FOR_RSS=("$floor_pid")
measure "bare hyper proxy (floor of the stack)" "http://127.0.0.1:$FLOOR/" "$floor_pid"
kill "$floor_pid"; wait "$floor_pid" 2>/dev/null || true
PIDS_FOR_RSS=("$h1floor_pid")
measure "hand-written HTTP/1.1 proxy (h1_floor)" "http://127.0.0.1:$H1FLOOR/" "$h1floor_pid"
kill "$h1floor_pid"; wait "$h1floor_pid" 2>/dev/null || true
PIDS_FOR_RSS=("$pc_pid")
measure "portcullis (inspection off, access log off)" "http://127.0.0.1:$PC/" "$pc_pid"
kill "$pc_pid"; wait "$pc_pid" 2>/dev/null || true
start_on $PCLOG "$work/pclog.err" "$bin" serve -c "$work/pc-$PCLOG.toml"; pclog_pid=$started_pid
PIDS_FOR_RSS=("$pclog_pid")
measure "portcullis defaults (inspection on, JSON access log to a file)" "http://127.0.0.1:$PCLOG/" "$pclog_pid"
