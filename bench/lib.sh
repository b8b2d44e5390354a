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
  local requests; requests=$(echo "$out" | awk '/requests in/ {print $1}')
  local rps; rps=$(echo "$out" | awk '/^Requests\/sec/ {printf "%.0f", $2}')
  local p50; p50=$(echo "$out" | awk '$1=="50%" {print $2}')
  local p99; p99=$(echo "$out" | awk '$1=="99%" {print $2}')
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
