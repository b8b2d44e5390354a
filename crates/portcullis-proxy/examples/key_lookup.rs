//! What the `api_key` filter's lookup costs, apart from the rest of the gateway: format and
//! checksum check, HMAC-SHA-256, index lookup, usage count.
//!
//! ```sh
//! cargo run --release -p portcullis-proxy --example key_lookup                 # 1000 keys
//! cargo run --release -p portcullis-proxy --example key_lookup -- 20000        # more keys
//! ```
//!
//! Wall-clock figures on a busy machine vary; for a repeatable count run it under
//! `valgrind --tool=callgrind` and divide by the lookups.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::hint::black_box;
use std::time::Instant;

use portcullis_core::CredentialLookup;
use portcullis_proxy::keys::KeyIndex;
use portcullis_store::{Actor, KeyHasher, NewIdentity, NewKey, Store};

const LOOKUPS: u32 = 200_000;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let count: usize = std::env::args()
        .nth(1)
        .map_or(1000, |n| n.parse().expect("number of keys"));
    // Created one transaction each, as the store does, in memory.
    let store = Store::open(
        "sqlite::memory:",
        KeyHasher::new(b"a pepper of sixteen bytes or more").unwrap(),
    )
    .await
    .unwrap();
    let actor = Actor::new("bench");
    let identity = store
        .create_identity(NewIdentity::named("bench"), &actor)
        .await
        .unwrap();
    let mut keys = Vec::with_capacity(count);
    for _ in 0..count {
        let mut new = NewKey::for_identity(&identity.id);
        new.scopes = vec!["orders:read".into()];
        keys.push(store.create_key(new, &actor).await.unwrap().1);
    }
    let index = KeyIndex::load(&store).await.unwrap();
    let presented: Vec<&str> = keys.iter().map(|k| k.expose()).collect();

    let time = |name: &str, key: &dyn Fn(usize) -> String| {
        let keys: Vec<String> = (0..1024).map(key).collect();
        let start = Instant::now();
        for n in 0..LOOKUPS {
            black_box(index.api_key(black_box(&keys[n as usize % keys.len()])));
        }
        let ns = start.elapsed().as_nanos() as f64 / f64::from(LOOKUPS);
        println!("{name:<32} {ns:>7.0} ns per lookup");
    };
    println!("{count} keys in the index, {LOOKUPS} lookups each");
    time("valid key", &|n| presented[n % presented.len()].to_owned());
    time("unknown key (valid checksum)", &|_| {
        portcullis_store::ApiKey::generate("live")
            .unwrap()
            .into_plaintext()
            .expose()
            .to_owned()
    });
    time("malformed (bad checksum)", &|n| {
        let mut key = presented[n % presented.len()].to_owned();
        let last = key.pop().unwrap();
        key.push(if last == 'a' { 'b' } else { 'a' });
        key
    });
}
