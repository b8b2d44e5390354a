//! The issue's typical requests, shared by `examples/engine_bench.rs` and
//! `benches/detectors.rs`: a GET with 3 query parameters and 10 browser/API headers, and
//! a POST with a ~2 KB JSON body of realistic free text (the same headers less the
//! cookie, plus `content-type`).

/// A bearer JWT as an identity provider issues them (RS256, `kid`).
pub const JWT: &str = "Bearer eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCIsImtpZCI6IjE2YzNkNGQ1In0.\
eyJzdWIiOiI3ZjNjMmE5MC0xYjZlLTRjOGEtOWQyZi0wZTVhNmI3YzhkOTEiLCJuYW1lIjoiU2lvYmhhbiBPJ0JyaWVuIiw\
iaXNzIjoiaHR0cHM6Ly9hdXRoLmV4YW1wbGUuY29tLyIsImF1ZCI6Im9yZGVycyIsImlhdCI6MTcxNjIzOTAyMiwiZXhwIj\
oxNzE2MjQyNjIyLCJzY29wZSI6Im9yZGVyczpyZWFkIG9yZGVyczp3cml0ZSJ9.\
Q2hhbmdlTWVDaGFuZ2VNZUNoYW5nZU1lQ2hhbmdlTWVDaGFuZ2VNZUNoYW5nZU1lQ2hhbmdlTWVDaGFuZ2VNZQ";

/// The GET's headers, names in lower case.
pub fn get_headers() -> Vec<(&'static str, &'static [u8])> {
    vec![
        ("host", b"api.shop.example.com"),
        (
            "user-agent",
            b"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
        ),
        ("accept", b"application/json, text/plain, */*"),
        ("accept-language", b"en-GB,en;q=0.9,fr;q=0.8"),
        ("accept-encoding", b"gzip, deflate, br"),
        ("authorization", JWT.as_bytes()),
        ("referer", b"https://www.shop.example.com/orders?page=2&sort=recent"),
        ("origin", b"https://www.shop.example.com"),
        ("x-request-id", b"5b1e8f3c-2d4a-4f6b-9c7e-1a2b3c4d5e6f"),
        (
            "cookie",
            b"session=7f3c2a901b6e4c8a9d2f0e5a6b7c8d91; lang=en-GB; theme=dark",
        ),
    ]
}

/// The GET's query string.
pub const GET_QUERY: &str =
    "customer_id=7f3c2a90-1b6e-4c8a-9d2f-0e5a6b7c8d91&q=O%27Brien%20garden%20chairs&sort=created_at";

/// The path of the typical GET.
pub const GET_PATH: &str = "/v1/customers/7f3c2a90-1b6e-4c8a-9d2f-0e5a6b7c8d91/orders";

/// The path of the typical POST.
pub const POST_PATH: &str = "/v1/orders";

/// A ~2 KB order body with the kind of text real clients send.
pub fn post_body() -> String {
    let body = serde_json::json!({
        "order_id": "3e9b1f4c-7a2d-4c1e-8f5b-6d0a9c2e7b14",
        "customer": {
            "id": "7f3c2a90-1b6e-4c8a-9d2f-0e5a6b7c8d91",
            "name": "Siobhan O'Brien",
            "email": "siobhan.obrien@example.org",
            "phone": "+353 1 555 0192",
            "address": {
                "line1": "14 St. Stephen's Green",
                "line2": "Apt. 3B",
                "city": "Dublin",
                "postcode": "D02 XY45",
                "country": "IE"
            }
        },
        "items": [
            {"sku": "CHR-1042-GRN", "name": "Garden chair (set of 2)", "qty": 2, "price": 89.99,
             "note": "Please select the green ones if possible - the grey didn't match last time."},
            {"sku": "TBL-220-OAK", "name": "Oak table, 120cm", "qty": 1, "price": 349.0,
             "note": "Gift: leave the receipt out & wrap it if you can :)"},
            {"sku": "CSH-7-BLU", "name": "Seat cushion \"Harbour\" blue", "qty": 4, "price": 12.5,
             "note": null}
        ],
        "delivery": {
            "slot": "2024-06-14T09:00:00+01:00",
            "instructions": "Ring twice; if nobody answers, leave it with the neighbour at no. 16 (the one with the red door). Don't leave it by the bins!",
            "tracking_url": "https://track.parcels.example.com/t/IE1234567890?lang=en"
        },
        "payment": {
            "method": "card",
            "token": "tok_1PKq2eLkdIwHu7ixW3tJ9aZb",
            "billing_same_as_shipping": true
        },
        "coupon": "SUMMER-24",
        "comment": "Loved the last order <3 Could you drop-down the delivery window to the morning? We're usually out from 1pm to 6pm, so before noon works best. Thanks a million, and select a plan for the extended warranty on the table if there's one on offer - 2 or 3 years is fine.",
        "metadata": {
            "source": "web",
            "campaign": "newsletter_2024_06",
            "ab_bucket": "B",
            "user_agent_hint": "Chrome 124 on macOS",
            "referrer": "https://www.google.com/search?q=oak+garden+table"
        },
        "gift_message": "Happy anniversary, Tom & Mary! Here's to 25 more years. Love, Aoife, Ciarán and the kids.",
        "tags": ["garden", "summer", "priority", "gift"],
        "consent": {"marketing": false, "terms_version": "2024-03-01"}
    });
    body.to_string()
}

/// The POST's headers: the GET's without the cookie, plus `content-type`.
pub fn post_headers() -> Vec<(&'static str, &'static [u8])> {
    let mut headers = get_headers();
    headers.retain(|(k, _)| *k != "cookie");
    headers.push(("content-type", b"application/json"));
    headers
}
