#!/usr/bin/env python3
"""Replays JSON Lines requests (the waf-dev corpus format) over HTTP against one target and
prints per-set figures: attacks blocked and legitimate requests passed.

A request counts as blocked when the answer is not the upstream's 200 (403 from a WAF, or a
4xx from the gateway refusing a malformed request). Connection failures are counted apart.

usage: waf_replay.py HOST:PORT FILE.jsonl...   (prints one JSON object with the tallies)
"""
import http.client
import json
import sys
from collections import defaultdict


def key_of(record):
    label = "legit" if record.get("label") == "legit" else "attack"
    cls = record.get("class") or "unknown"
    level = (record.get("meta") or {}).get("paranoia_level")
    if label == "attack" and level is not None:
        return f"{record.get('set', '?')}: {cls} (PL{level})"
    return f"{record.get('set', '?')}: {label} {cls}" if label == "attack" else f"{record.get('set', '?')}: legit"


def main():
    host, port = sys.argv[1].rsplit(":", 1)
    tallies = defaultdict(lambda: {"total": 0, "blocked": 0, "errors": 0})
    conn = None
    for path in sys.argv[2:]:
        with open(path, encoding="utf-8") as lines:
            for line in lines:
                if not line.strip():
                    continue
                record = json.loads(line)
                tally = tallies[key_of(record)]
                tally["total"] += 1
                target = record["path"] + ("?" + record["query"] if record.get("query") else "")
                body = record.get("body", "").encode("utf-8")
                status = None
                for _attempt in range(2):
                    try:
                        if conn is None:
                            conn = http.client.HTTPConnection(host, int(port), timeout=10)
                        conn.putrequest(record["method"], target, skip_host=True, skip_accept_encoding=True)
                        conn.putheader("Host", "localhost")
                        for name, value in (record.get("headers") or {}).items():
                            conn.putheader(name, value.encode("utf-8"))
                        if body or record["method"] in ("POST", "PUT", "PATCH"):
                            conn.putheader("Content-Length", str(len(body)))
                        conn.endheaders(body if body else None)
                        response = conn.getresponse()
                        response.read()
                        status = response.status
                        if response.will_close:
                            conn.close()
                            conn = None
                        break
                    except (http.client.HTTPException, OSError, ValueError):
                        if conn is not None:
                            conn.close()
                        conn = None
                if status is None:
                    tally["errors"] += 1
                    tally["blocked"] += 1
                elif status != 200:
                    tally["blocked"] += 1
    json.dump(tallies, sys.stdout)


if __name__ == "__main__":
    main()
