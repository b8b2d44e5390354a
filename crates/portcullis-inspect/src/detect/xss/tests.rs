#![allow(clippy::unwrap_used, clippy::expect_used)]
use crate::detect::score_of;
use crate::extract::Origin;
use crate::settings::Class;

const BLOCK: u32 = 60;

fn s(t: &str) -> u32 {
    score_of(t, Origin::ParamValue, Class::Xss)
}

fn decoded(t: &str) -> u32 {
    // Through the full decode pipeline, as the engine sees a query value.
    crate::decode::variants(t, true)
        .iter()
        .map(|v| score_of(v, Origin::ParamValue, Class::Xss))
        .max()
        .unwrap_or(0)
}

#[test]
fn attack_variants_block() {
    let attacks = [
        "<script>alert(1)</script>",
        "<ScRiPt src=//evil.example/x.js>",
        "<img src=x onerror=alert(1)>",
        "<img/src=x\tonerror=alert`1`>",
        "<svg/onload=alert(document.domain)>",
        "<a href=\"javascript:alert(1)\">x</a>",
        "<a href=\"jav&#x09;ascript:alert(1)\">x</a>",
        "<iframe srcdoc=\"<script>alert(1)</script>\">",
        "<div style=\"background:url(javascript:alert(1))\">",
        "<div style=\"width:expr/**/ession(alert(1))\">",
        "\" onmouseover=\"alert(1)",
        "' autofocus onfocus='alert(1)",
        "';alert(String.fromCharCode(88,83,83))//",
        "\"-alert(1)-\"",
        "</script><script>alert(1)</script>",
        "javascript:alert(document.cookie)",
        "<body onload=alert(1)>",
        "<object data=\"data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==\">",
        "[].constructor.constructor('alert(1)')()",
        "(![]+[])[+!+[]]",
        "<meta http-equiv=\"refresh\" content=\"0;url=javascript:alert(1)\">",
        "<x onclick=alert(1)>click",
    ];
    for a in attacks {
        assert!(s(a) >= BLOCK, "should block {a:?}: {}", s(a));
    }
}

#[test]
fn encoded_variants_block() {
    for a in [
        "%3Cscript%3Ealert(1)%3C%2Fscript%3E",
        "%253Cscript%253Ealert(1)%253C%252Fscript%253E",
        "&lt;img src=x onerror=alert(1)&gt;",
        "\\u003cscript\\u003ealert(1)\\u003c/script\\u003e",
        "%u003Csvg onload=alert(1)%u003E",
        "+ADw-script+AD4-alert(1)+ADw-/script+AD4-",
        "＜script＞alert(1)＜/script＞",
    ] {
        assert!(decoded(a) >= BLOCK, "should block {a:?}: {}", decoded(a));
    }
}

#[test]
fn look_alike_legit_passes() {
    let legit = [
        "I love it <3",
        "a < b and c > d",
        "<p>Great beer, <strong>highly</strong> recommended.</p>",
        "<a href=\"https://www.example.com/page\">link</a>",
        "<img src=\"https://cdn.example.com/a.png\" alt=\"photo\">",
        "javascript: the good parts is a book",
        "Click on the button to continue",
        "Turn on=off switch",
        "javascript:void(0)",
        "Please confirm (yes or no)",
        "The alert was raised at 5pm",
        "see document.pdf for details",
        "x = y + z; // math",
        "Use the `select` element",
        "**bold** and _italic_ markdown [link](https://example.org)",
    ];
    for l in legit {
        assert!(s(l) < BLOCK, "should pass {l:?}: {}", s(l));
    }
}

#[test]
fn issue_5_seven_bit_markup() {
    for a in [
        "\u{BC}script\u{BE}alert(1)\u{BC}/script\u{BE}",
        "\\xbcb\\xbebold\\xbc/b\\xbe",
        "%BCsvg onload=x%BE%BC/svg%BE",
        "\\xbcscript\\xe9\\xbealert(1)\\xbc/script\\xe9\\xbe",
    ] {
        assert!(decoded(a) >= BLOCK, "{a}: {}", decoded(a));
    }
    for l in [
        "\u{BC} cup sugar and \u{BE} cup flour",
        "Mix \u{BC}tsp salt, \u{BE}tsp pepper, then \u{BC}/\u{BE} of the rest",
        "\u{BC}in\u{BE} bolts, \u{BC}in\u{BE} nuts",
        "\\xd0\\xbc/\\xd0\\xbe: Cyrillic \u{43C} and \u{43E} are not brackets",
    ] {
        assert!(decoded(l) < BLOCK, "{l}: {}", decoded(l));
    }
}

#[test]
fn issue_5_prefixed_element_names() {
    // `soap:Body`, `w:body` are containers of their own XML vocabulary; script-capable
    // elements and foreign-content roots count under a prefix (bound to XHTML they run).
    for a in [
        "<x:script xmlns:x=\"http://www.w3.org/1999/xhtml\">alert(1)</x:script>",
        "<h:iframe src=\"javascript:alert(1)\">",
        "<svg:svg onload=alert(1)>",
        "<svg:svg>",
        "<soap:Body onload=alert(1)>",
        "<body>",
    ] {
        assert!(s(a) >= BLOCK, "should block {a:?}: {}", s(a));
    }
    for l in [
        "<soap:Envelope xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\"><soap:Body><m:Ping/></soap:Body></soap:Envelope>",
        "<w:body><w:p>Quarterly report</w:p></w:body>",
        "<S:Envelope><S:Header/><S:Body><ns2:getOrder><id>42</id></ns2:getOrder></S:Body></S:Envelope>",
    ] {
        assert!(s(l) < BLOCK, "should pass {l:?}: {}", s(l));
    }
}
