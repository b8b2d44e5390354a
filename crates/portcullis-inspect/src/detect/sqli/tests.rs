#![allow(clippy::unwrap_used, clippy::expect_used)]
use crate::detect::score_of;
use crate::extract::Origin;
use crate::settings::Class;

const BLOCK: u32 = 60;

fn s(t: &str) -> u32 {
    score_of(t, Origin::ParamValue, Class::Sqli)
}

#[test]
fn attack_variants_block() {
    let attacks = [
        // Tautologies after a string break, with case, comments and whitespace tricks.
        "' or 1=1--",
        "' OR '1'='1",
        "admin' or 'a'='a",
        "' Or/**/1=1#",
        "'\tor\n1=1 -- -",
        "\" or \"\"=\"",
        "') or ('x')=('x",
        "1' AND 1=1 AND 'a'='a",
        // Numeric context.
        "1 or 1=1",
        "1) or (1=1",
        "-1 OR 2>1--",
        "1 and sleep(5)",
        // UNION, with comments and MySQL executable comments.
        "1 union select null,username,password from users--",
        "1 UnIoN/**/SeLeCt 1,2,3",
        "-1 /*!50000union*/ /*!50000select*/ 1,2",
        "' union all select @@version--",
        // Stacked queries and time delays.
        "1; drop table users--",
        "'; exec master..xp_cmdshell 'ping 10.0.0.1'--",
        "1'; waitfor delay '0:0:5'--",
        "1 and benchmark(5000000,md5(1))",
        "'||pg_sleep(5)||'",
        "(select load_file('/etc/passwd'))",
        // Literal comparisons standing alone (numeric context), JSON-operator chains.
        "'a'='a'",
        "'{\"a\":2,\"c\":[4,5]}' < '$.c[1]' = 5",
        "'x' >= 'x'",
        // Error-based and boolean probes.
        "1 and extractvalue(1,concat(0x7e,version()))",
        "iif(1=1,1,1/0)",
        "1' where 1=1 and 2=2--",
        "1 order by 10--",
        "admin'--",
        "admin')#",
        // Concatenation.
        "'+(select 1)+'",
        "1' || (select user()) || '",
    ];
    for a in attacks {
        assert!(s(a) >= BLOCK, "should block {a:?}: {}", s(a));
    }
}

#[test]
fn look_alike_legit_passes() {
    let legit = [
        "O'Brien",
        "Sean O'Brien and Mary O'Neil",
        "select a plan",
        "Please select your size from the drop-down",
        "drop-down menu",
        "I'd like 1 or 2 of these",
        "Rock 'n' roll",
        "It's 5'9\" and runs small, or so I think",
        "union station at 5pm",
        "Where is my order? It said 3-5 days",
        "I love it <3",
        "update your profile and set a password",
        "Tom & Jerry -- the movie",
        "24-7-TEAM",
        "price >= 10 and <= 20",
        "1---",
        "She said \"hello\" and left",
        "case when we ship",
        // Quoted words next to a comparison inside ordinary text are not a bare predicate.
        "the 'a' = 'b' example from chapter 2 is wrong",
        "'yes' or 'no'",
        "'Hamlet' > 'Macbeth', discuss",
    ];
    for l in legit {
        assert!(s(l) < BLOCK, "should pass {l:?}: {}", s(l));
    }
}

#[test]
fn issue_5_quote_contexts_are_independent() {
    // The single-quote context closes at the first quote; a second quote later must not
    // let prose read as a break.
    assert!(s("don't stop believin'") < BLOCK);
    assert!(s("x' or 'y'='y") >= BLOCK);
}

#[test]
fn issue_5_dangling_operator_after_a_break() {
    // The application's closing quote becomes the right operand: `'admin' or ''`.
    for a in [
        "admin' or ",
        "' = ",
        "'=",
        "` REGEXP ",
        "\" like ",
        "x'||",
        "' RLIKE",
        "%' and",
    ] {
        assert!(s(a) >= BLOCK, "{a}: {}", s(a));
    }
    for l in [
        "It's like ",
        "James' in",
        "the Smiths' or the Joneses'",
        "Rock 'n' roll or",
        "He said \"yes\" like always",
        "I'd say 'maybe' or",
        "'90s or",
        "don't =",
        "Stylish and",
        "Warm and",
        "tall or",
    ] {
        assert!(s(l) < BLOCK, "{l}: {}", s(l));
    }
}

#[test]
fn issue_5_truncate_with_a_quoted_identifier() {
    for a in [
        ";truncate[orders",
        "; TRUNCATE [dbo].[orders]",
        "1; truncate `orders`",
        "x'; truncate [users]--",
    ] {
        assert!(s(a) >= BLOCK, "{a}: {}", s(a));
    }
    for l in [
        "if it's too long; truncate it",
        "truncate [text] to 80 chars",
        "[truncate] long lines; wrap [short] ones",
    ] {
        assert!(s(l) < BLOCK, "{l}: {}", s(l));
    }
}

#[test]
fn issue_5_statement_grammar() {
    // `SELECT ALL|DISTINCT` before a numeric first column, MySQL `DELETE` modifiers and
    // `LOAD DATA|XML INFILE`, T-SQL `BEGIN DECLARE` and `IF` statements.
    for a in [
        "-1 union select all 1,2,group_concat(login,0x3a,password) from users",
        "99999 UNION SELECT DISTINCT 1,pass,3 from users/*",
        "1; delete quick from orders",
        "1;delete low_priority ignore from sessions",
        "1;load data infile '/etc/passwd' into table t",
        "1; LOAD XML LOCAL INFILE \"/tmp/x.xml\" INTO TABLE t",
        "1;BEGIN DECLARE @x varchar(8000)",
        "';if 1=1 drop database shop-- -a",
        "1; if exists (select * from users) waitfor delay '0:0:5'",
        "x'; IF (SELECT COUNT(*) FROM users) > 0 WAITFOR DELAY '0:0:5'--",
    ] {
        assert!(s(a) >= BLOCK, "should block {a:?}: {}", s(a));
    }
    for l in [
        "select all 3 items, then checkout",
        "Please delete quick replies from my inbox",
        "load data; if you can, then save it",
        "Begin; declare your intent",
        "If 1 = 1 then we drop the idea; fine",
        "We'll load XML infile handling next sprint",
        "if exists (a draft) keep it",
    ] {
        assert!(s(l) < BLOCK, "should pass {l:?}: {}", s(l));
    }
}
