#!/usr/bin/env bash
# Detection, side by side, in one run: the labelled corpus in ../shared/corpora/waf-dev replayed
# over HTTP against
#   - Portcullis (default inspection: block, balanced) in front of an upstream that answers 200,
#   - Apache + ModSecurity 2 + OWASP CRS (Debian packages) as a reverse proxy in blocking
#     mode at paranoia level 1 and 2, audit log off, in front of the same upstream.
# Prints, per corpus set and class, the share of attacks blocked and of legitimate requests
# passed. Installs the packages when missing; starts and stops what it starts by PID.
#
#   bench/waf.sh                 # every file of the corpus
#   bench/waf.sh FILE.jsonl...   # chosen files
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
source "$here/lib.sh"
corpus="$root/../shared/corpora/waf-dev"
[ -d "$corpus" ] || { echo "the corpus is missing: $corpus" >&2; exit 1; }
files=("$@")
[ ${#files[@]} -gt 0 ] || files=("$corpus"/*.jsonl)

need_pkg nginx nginx
need_pkg apache2 apache2
[ -f /usr/lib/apache2/modules/mod_security2.so ] || need_pkg __none__ libapache2-mod-security2
[ -d /usr/share/modsecurity-crs/rules ] || need_pkg __none__ modsecurity-crs
command -v python3 >/dev/null || { echo "python3 is needed for the replay" >&2; exit 1; }

setup_work

UP=18181; PC=18182; PL1=18183; PL2=18184

build_portcullis

start_upstream $UP ok 'client_max_body_size 20m;'
{ pc_config $PC $UP off 'max_body_bytes = "16 MiB"'; pc_route all / 'auth = ["none"]'; } > "$work/pc.toml"
start_on $PC "$work/pc.err" "$bin" serve -c "$work/pc.toml"

modules=/usr/lib/apache2/modules
# Debian's recommended modsecurity.conf (its JSON and XML body processors, strict multipart and
# body-parse checks), in blocking mode, audit log off, its files here; each Apache below raises
# the body and PCRE limits after it for the corpus' large requests.
sed -e 's/^SecRuleEngine .*/SecRuleEngine On/' -e 's/^SecAuditEngine .*/SecAuditEngine Off/' \
  -e "s|^SecAuditLog .*|SecAuditLog $work/modsec_audit.log|" \
  -e "s|^SecTmpDir .*|SecTmpDir $work|" -e "s|^SecDataDir .*|SecDataDir $work|" \
  -e 's|^SecUnicodeMapFile unicode.mapping|SecUnicodeMapFile /etc/modsecurity/unicode.mapping|' \
  /etc/modsecurity/modsecurity.conf-recommended > "$work/modsecurity.conf"
for level in 1 2; do
  port=$PL1; [ "$level" = 2 ] && port=$PL2
  cp /etc/modsecurity/crs/crs-setup.conf "$work/crs-setup-$level.conf"
  cat >> "$work/crs-setup-$level.conf" <<CONF
SecAction "id:900000,phase:1,nolog,pass,t:none,setvar:tx.paranoia_level=$level"
CONF
  cat > "$work/apache-$level.conf" <<CONF
ServerRoot /etc/apache2
ServerName localhost
Listen 127.0.0.1:$port
PidFile $work/apache-$level.pid
ErrorLog $work/apache-$level.err
LogLevel crit
LoadModule mpm_event_module $modules/mod_mpm_event.so
LoadModule authz_core_module $modules/mod_authz_core.so
LoadModule unique_id_module $modules/mod_unique_id.so
LoadModule proxy_module $modules/mod_proxy.so
LoadModule proxy_http_module $modules/mod_proxy_http.so
LoadModule security2_module $modules/mod_security2.so
User www-data
Group www-data
Include $work/modsecurity.conf
SecRequestBodyLimit 20971520
SecRequestBodyNoFilesLimit 1048576
SecRequestBodyLimitAction Reject
SecResponseBodyAccess Off
SecPcreMatchLimit 500000
SecPcreMatchLimitRecursion 500000
Include $work/crs-setup-$level.conf
Include /usr/share/modsecurity-crs/rules/*.conf
ProxyPass "/" "http://127.0.0.1:$UP/"
CONF
  chown www-data "$work" 2>/dev/null || true
  start_on "$port" "$work/apache-$level.log" apache2 -f "$work/apache-$level.conf" -DFOREGROUND
done

echo "replaying ${#files[@]} file(s): $(cat "${files[@]}" | wc -l) requests per target" >&2
replays=()
python3 "$here/waf_replay.py" "127.0.0.1:$PC" "${files[@]}" > "$work/pc.json" & replays+=($!)
python3 "$here/waf_replay.py" "127.0.0.1:$PL1" "${files[@]}" > "$work/pl1.json" & replays+=($!)
python3 "$here/waf_replay.py" "127.0.0.1:$PL2" "${files[@]}" > "$work/pl2.json" & replays+=($!)
for pid in "${replays[@]}"; do wait "$pid"; done

python3 - "$work/pc.json" "$work/pl1.json" "$work/pl2.json" <<'PY'
import json, sys
pc, pl1, pl2 = (json.load(open(p)) for p in sys.argv[1:4])
print()
print("| set: class | requests | Portcullis (balanced) | ModSecurity + CRS PL1 | ModSecurity + CRS PL2 |")
print("|---|---:|---:|---:|---:|")
def share(t, legit):
    n = t["total"] or 1
    v = (n - t["blocked"]) if legit else t["blocked"]
    s = f"{100.0 * v / n:.2f}%"
    if t["errors"]:
        s += f" ({t['errors']} conn. errors)"
    return s
for key in sorted(pc):
    legit = key.endswith(": legit")
    label = key + (" (passed)" if legit else " (blocked)")
    print(f"| {label} | {pc[key]['total']} | {share(pc[key], legit)} | {share(pl1.get(key, pc[key] | {'blocked': 0, 'errors': 0}), legit)} | {share(pl2.get(key, pc[key] | {'blocked': 0, 'errors': 0}), legit)} |")
PY
