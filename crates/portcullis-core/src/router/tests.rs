#![allow(clippy::unwrap_used, clippy::panic)]

use std::path::Path;

use portcullis_config::Config;

use super::*;

fn router(routes: &str) -> Router {
    let text = format!("[[upstream]]\nname = \"u\"\ntargets = [\"127.0.0.1:1\"]\n{routes}");
    let config = Config::from_toml(&text, Path::new(".")).unwrap();
    Router::new(&config.routes)
}

fn route(name: &str, extra: &str) -> String {
    format!("[[route]]\nname = \"{name}\"\nupstream = \"u\"\nauth = [\"none\"]\n{extra}\n")
}

fn matched(r: &RouteMatch) -> (usize, Vec<(String, String)>) {
    match r {
        RouteMatch::Matched { route, params } => (
            *route,
            params
                .iter()
                .map(|(a, b)| (a.to_owned(), b.to_owned()))
                .collect(),
        ),
        other => panic!("no match: {other:?}"),
    }
}

#[test]
fn most_specific_route_wins() {
    let r = router(
        &[
            route("prefix", "path_prefix = \"/orders/\""),
            route("param", "path = \"/orders/{order_id}\""),
            route("literal", "path = \"/orders/summary\""),
            route(
                "host",
                "path = \"/orders/{order_id}\"\nhost = \"api.example.com\"",
            ),
            route(
                "wild",
                "path = \"/orders/{order_id}\"\nhost = \"*.example.com\"",
            ),
            route(
                "delete",
                "path = \"/orders/{order_id}\"\nmethods = [\"DELETE\"]",
            ),
        ]
        .concat(),
    );
    let get = Method::GET;
    assert_eq!(matched(&r.route(None, &get, "/orders/summary")).0, 2);
    assert_eq!(
        matched(&r.route(None, &get, "/orders/42")),
        (1, vec![("order_id".into(), "42".into())])
    );
    assert_eq!(matched(&r.route(None, &Method::DELETE, "/orders/42")).0, 5);
    assert_eq!(
        matched(&r.route(Some("API.example.com"), &get, "/orders/42")).0,
        3
    );
    assert_eq!(
        matched(&r.route(Some("eu.example.com"), &get, "/orders/42")).0,
        4
    );
    assert_eq!(
        matched(&r.route(Some("example.com"), &get, "/orders/42")).0,
        1
    );
    assert_eq!(matched(&r.route(None, &get, "/orders/42/items")).0, 0);
    assert_eq!(matched(&r.route(None, &get, "/orders")).0, 0);
    assert_eq!(r.route(None, &get, "/other"), RouteMatch::NotFound);
}

#[test]
fn params_are_decoded() {
    let r = router(&route("p", "path = \"/users/{name}/files\""));
    assert_eq!(
        matched(&r.route(None, &Method::GET, "/users/J%C3%BCrgen%20K/files")).1,
        vec![("name".into(), "Jürgen K".into())]
    );
    assert_eq!(
        r.route(None, &Method::GET, "/users//files"),
        RouteMatch::NotFound
    );
}

#[test]
fn method_not_allowed_lists_methods() {
    let r = router(&route("p", "path = \"/x\"\nmethods = [\"GET\", \"POST\"]"));
    assert_eq!(
        r.route(None, &Method::PUT, "/x"),
        RouteMatch::MethodNotAllowed {
            allow: vec![Method::GET, Method::POST, Method::HEAD]
        }
    );
    assert_eq!(matched(&r.route(None, &Method::HEAD, "/x")).0, 0);
}

#[test]
fn ambiguous_paths_are_refused() {
    let r = router(&route("p", "path_prefix = \"/public/\""));
    for path in [
        "/public/../admin",
        "/public/%2e%2e/admin",
        "/public/%2E./admin",
        "/public/./x",
        "/public/a%2Fb",
        "/public/a%5cb",
        "/public/a\\b",
        "/public/%00",
        "/public/%ff",
        "/public/%C0%AE%C0%AE/admin",
        "/public/café",
        "/public/a b",
        "relative",
    ] {
        match r.route(None, &Method::GET, path) {
            RouteMatch::Invalid(rejection) => {
                assert_eq!(rejection.status, 400, "{path}");
                assert_eq!(rejection.code, "bad_path", "{path}");
            }
            other => panic!("{path} was not refused: {other:?}"),
        }
    }
    // Look-alikes that are fine.
    for path in ["/public/..hidden", "/public/a.b", "/public/%41", "/public/"] {
        assert!(
            matches!(
                r.route(None, &Method::GET, path),
                RouteMatch::Matched { .. }
            ),
            "{path}"
        );
    }
    assert!(matches!(
        r.route(None, &Method::GET, "/public"),
        RouteMatch::Matched { .. }
    ));
    assert_eq!(
        r.route(None, &Method::GET, "/publicity"),
        RouteMatch::NotFound
    );
}
