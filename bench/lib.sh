# Shared helpers for the benchmarks (sourced).
set -euo pipefail

need_pkg() { # command package
  command -v "$1" >/dev/null 2>&1 && return 0
  echo "installing $2 (for $1)" >&2
  if [ "$(id -u)" = 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null 2>&1 ||
      { apt-get update -qq >/dev/null 2>&1; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null; }
  else
    sudo apt-get install -y -qq "$2" >/dev/null
  fi
}

# A scratch directory $work, removed on exit, and an array pids whose processes are killed
# (and reaped) on exit: every process a benchmark starts goes into pids.
setup_work() {
  work=$(mktemp -d)
  pids=()
  trap cleanup_work EXIT
}
cleanup_work() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}

# Sets $target (the cargo target directory: $CARGO_TARGET_DIR, or target/ in the workspace)
# and $bin: $PORTCULLIS_BIN when set, else the release binary, built here.
build_portcullis() {
  target=$(cd "$root" && mkdir -p "${CARGO_TARGET_DIR:-target}" && cd "${CARGO_TARGET_DIR:-target}" && pwd)
  if [ -n "${PORTCULLIS_BIN:-}" ]; then
    bin=$PORTCULLIS_BIN
    return
  fi
  echo "building portcullis (release)" >&2
  (cd "$root" && cargo build --release --locked -q -p portcullis)
  bin="$target/release/portcullis"
}

# Starts COMMAND... in the background with stderr to LOG, adds its PID to pids and sets
# started_pid, then waits until PORT accepts connections (on failure, shows LOG's tail).
start_on() { # port log command...
  local port=$1 log=$2; shift 2
  "$@" 2>"$log" & pids+=($!); started_pid=$!
  wait_port "$port" || { tail -n 5 "$log" >&2; return 1; }
}

# The main context of an nginx config run in the foreground: WORKERS worker processes, pid
# and error log in $work/NAME.pid and $work/NAME.err.
nginx_main() { # name workers
  cat <<CONF
worker_processes $2;
daemon off;
pid $work/$1.pid;
error_log $work/$1.err crit;
events { worker_connections 4096; }
CONF
}

# The upstream of every benchmark: one nginx worker on PORT answering 200 with BODY (default
# {"ok":true}, as application/json); EXTRA goes into its http block. Sets up_pid.
start_upstream() { # port [body] [extra]
  local body='{"ok":true}'
  [ $# -lt 2 ] || body=$2
  { nginx_main up 1
    cat <<CONF
http { access_log off; keepalive_requests 1000000; ${3:-}
  server { listen 127.0.0.1:$1; location / { return 200 '$body'; default_type application/json; } } }
CONF
  } > "$work/up.conf"
  start_on "$1" "$work/up.log" nginx -c "$work/up.conf"
  up_pid=$started_pid
}

# The head of a Portcullis config: [gateway] on PORT (plus GATEWAY_EXTRA lines), [admin] on
# PORT + 1000, [log] access = ACCESS (default off), and one upstream "up" at UP_PORT. Other
# sections and routes follow.
pc_config() { # port up-port [access] [gateway-extra]
  cat <<CONF
[gateway]
listen = ["127.0.0.1:$1"]
${4:-}
[admin]
listen = "127.0.0.1:$(($1 + 1000))"
[log]
access = "${3:-off}"
[[upstream]]
name = "up"
targets = ["127.0.0.1:$2"]
CONF
}

# A [[route]] on a path prefix to the upstream "up", then LINE... (auth, limits, ...).
pc_route() { # name prefix line...
  local name=$1 prefix=$2; shift 2
  printf '[[route]]\nname = "%s"\npath_prefix = "%s"\nupstream = "up"\n' "$name" "$prefix"
  [ $# -eq 0 ] || printf '%s\n' "$@"
}

# The lines of a public route with inspection off: the proxy alone, what cost benchmarks
# compare against.
bare_route=('auth = ["none"]' 'inspect = { mode = "off" }')

# Reads wrk --latency output; prints "requests rps p50 p99" (latencies as wrk prints them,
# "-" when wrk printed none).
wrk_figures() {
  awk '/requests in/ { n = $1 } /^Requests\/sec/ { r = sprintf("%.0f", $2) }
    $1 == "50%" { p50 = $2 } $1 == "99%" { p99 = $2 }
    END { print n + 0, (r == "" ? "-" : r), (p50 == "" ? "-" : p50), (p99 == "" ? "-" : p99) }'
}

# CPU ticks (utime+stime) of a set of PIDs.
cpu_ticks() {
  local total=0 pid
  for pid in "$@"; do
    [ -r "/proc/$pid/stat" ] || continue
    # Fields 14 and 15, counted after the ")" that ends the command name.
    local rest; rest=$(sed 's/^.*) //' "/proc/$pid/stat")
    set -- $rest
    total=$((total + ${12} + ${13}))
  done
  echo "$total"
}

# RSS in kB of a set of PIDs.
rss_kb() {
  local total=0 pid v
  for pid in "$@"; do
    v=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
    total=$((total + ${v:-0}))
  done
  echo "$total"
}

# PID and its children (nginx master + workers).
pid_tree() {
  local pid=$1
  echo "$pid"
  pgrep -P "$pid" || true
}

wait_port() { # port
  for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "nothing listens on port $1" >&2
  return 1
}

# One wrk run against a URL while measuring the CPU of PIDs; prints
# "cpu_us rps p50 p99 errors" on one line.
measure_once() {
  local url=$1; shift
  local pids=("$@")
  local hz; hz=$(getconf CLK_TCK)
  local before; before=$(cpu_ticks "${pids[@]}")
  local script=(); [ -n "${WRK_SCRIPT:-}" ] && script=(-s "$WRK_SCRIPT")
  local out; out=$(wrk -t2 -c"$CONNS" -d"$DURATION" --latency "${script[@]}" "$url")
  local after; after=$(cpu_ticks "${pids[@]}")
  local requests rps p50 p99
  read -r requests rps p50 p99 < <(wrk_figures <<<"$out")
  local errors; errors=$(echo "$out" | awk '/Non-2xx|Socket errors/ {print}' | tr '\n' ' ' | tr -s ' ' | tr ' ' '_')
  local cpu_us=0
  if [ "${#pids[@]}" -gt 0 ] && [ "${requests:-0}" -gt 0 ]; then
    cpu_us=$(awk -v t=$((after - before)) -v hz="$hz" -v n="$requests" 'BEGIN { printf "%.1f", t / hz * 1e6 / n }')
  fi
  echo "$cpu_us $rps $p50 $p99 ${errors:-none}"
}

# Runs wrk REPEAT times (default 3) against a URL while measuring the CPU of PIDs, and
# prints one markdown row: the run with the median CPU per request (loopback benchmarks on a
# small machine are noisy; the median of several runs is the figure to compare).
# Usage: measure NAME URL PID...
measure() {
  local name=$1 url=$2; shift 2
  local runs=()
  local script=(); [ -n "${WRK_SCRIPT:-}" ] && script=(-s "$WRK_SCRIPT")
  wrk -t2 -c"$CONNS" -d2s "${script[@]}" "$url" >/dev/null   # warm-up: connections, pools, caches
  for _ in $(seq 1 "${REPEAT:-3}"); do
    runs+=("$(measure_once "$url" "$@")")
  done
  local median; median=$(printf '%s\n' "${runs[@]}" | sort -n -k1,1 | awk -v n="${#runs[@]}" 'NR == int((n + 1) / 2)')
  local all; all=$(printf '%s\n' "${runs[@]}" | awk '{print $1}' | paste -sd/)
  set -- $median
  local cpu=$1 rps=$2 p50=$3 p99=$4 errors=$5
  [ "$#" -gt 0 ] && [ "$cpu" != 0 ] || cpu="-"
  local rss; rss=$(rss_kb "${PIDS_FOR_RSS[@]}")
  printf '| %s | %s | %s | %s | %s (runs: %s) | %s | %s |\n' "$name" "$rps" "$p50" "$p99" "$cpu" "$all" \
    "$(awk -v k="$rss" 'BEGIN { if (k > 0) printf "%.1f", k / 1024; else printf "-" }')" "${errors//_/ }"
}
