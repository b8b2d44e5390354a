//! Any request path is routed or refused; never a panic, and an accepted path never holds a
//! dot segment or an encoded separator once decoded.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_core::{RouteMatch, Router};

const CONFIG: &str = r#"
[[upstream]]
name = "u"
targets = ["127.0.0.1:1"]
[[route]]
name = "a"
path = "/orders/{id}/items/{item}"
upstream = "u"
auth = ["none"]
[[route]]
name = "b"
path_prefix = "/static/"
upstream = "u"
auth = ["none"]
[[route]]
name = "c"
host = "*.example.com"
path = "/orders/summary"
upstream = "u"
auth = ["none"]
"#;

fuzz_target!(|data: &[u8]| {
    let Ok(path) = std::str::from_utf8(data) else { return };
    let Ok(config) = portcullis_config::Config::from_toml(CONFIG, std::path::Path::new(".")) else {
        return;
    };
    let router = Router::new(&config.routes);
    if let RouteMatch::Matched { params, .. } = router.route(Some("eu.example.com"), &http::Method::GET, path) {
        for (_, value) in params.iter() {
            assert!(value != "." && value != "..");
            assert!(!value.contains('/') && !value.contains('\\'));
        }
    }
});
