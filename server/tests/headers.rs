//! What the router adds, keeps and removes on the way through: forwarding headers, request
//! ids, hop-by-hop headers, Host, and prefix stripping.

mod support;

use support::*;

async fn echo(client: &Client, path: &str, headers: &[(&str, &str)]) -> serde_json::Value {
    let reply = client.get_with(path, headers).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    reply.json()
}

#[tokio::test]
async fn forwarding_headers_reach_the_backend() {
    let bs = backends(&["a"]).await;
    let r = api_router(&bs, "round_robin", "");
    let client = Client::new(r.addr());
    let seen = echo(
        &client,
        "/api/x?echo=1",
        &[("x-forwarded-for", "203.0.113.7")],
    )
    .await;
    let h = &seen["headers"];
    assert_eq!(h["x-forwarded-for"], "203.0.113.7, 127.0.0.1");
    assert_eq!(h["x-forwarded-proto"], "http");
    assert_eq!(h["host"], r.addr().to_string(), "the client's Host is kept");
    assert_eq!(seen["path"], "/api/x");
    assert_eq!(seen["query"], "echo=1");
}

#[tokio::test]
async fn request_ids_are_generated_or_kept_and_returned() {
    let bs = backends(&["a"]).await;
    let r = api_router(&bs, "round_robin", "");
    let client = Client::new(r.addr());

    let reply = client.get("/api/x?echo=1").await;
    let generated = reply
        .header("x-request-id")
        .expect("generated id")
        .to_string();
    assert_eq!(generated.len(), 36, "a uuid: {generated}");
    assert_eq!(reply.json()["headers"]["x-request-id"], generated.as_str());

    let reply = client
        .get_with("/api/x?echo=1", &[("x-request-id", "play-123")])
        .await;
    assert_eq!(reply.header("x-request-id"), Some("play-123"));
    assert_eq!(reply.json()["headers"]["x-request-id"], "play-123");
}

#[tokio::test]
async fn hop_by_hop_headers_stop_at_the_router() {
    let bs = backends(&["a"]).await;
    let r = api_router(&bs, "round_robin", "");
    let client = Client::new(r.addr());
    let seen = echo(
        &client,
        "/api/x?echo=1",
        &[
            ("connection", "x-hop"),
            ("x-hop", "secret"),
            ("te", "trailers"),
            ("proxy-authorization", "Basic Zm9vOmJhcg=="),
            ("x-end-to-end", "kept"),
        ],
    )
    .await;
    let h = &seen["headers"];
    for gone in ["x-hop", "te", "proxy-authorization", "connection"] {
        assert!(h.get(gone).is_none(), "{gone} was forwarded: {h}");
    }
    assert_eq!(h["x-end-to-end"], "kept");
}

#[tokio::test]
async fn responses_carry_the_backend_id_and_request_id() {
    let bs = backends(&["api-7"]).await;
    let r = api_router(&bs, "round_robin", "");
    let reply = Client::new(r.addr()).get("/api/x").await;
    assert_eq!(reply.backend(), "api-7");
    assert!(reply.header("x-request-id").is_some());
    assert_eq!(reply.header("content-length"), Some("5"));
}

#[tokio::test]
async fn a_route_can_strip_its_prefix() {
    let bs = backends(&["a"]).await;
    let r = router(&format!(
        "[[routes]]\nid = \"api\"\npath_prefix = \"/api\"\nstrip_prefix = true\npool = \"api\"\n{}",
        pool("api", "round_robin", &bs, &[])
    ));
    let client = Client::new(r.addr());
    assert_eq!(
        echo(&client, "/api/v1/titles?echo=1", &[]).await["path"],
        "/v1/titles"
    );
    assert_eq!(echo(&client, "/api?echo=1", &[]).await["path"], "/");
}

#[tokio::test]
async fn host_routes_win_over_any_host_routes() {
    let tv = backends(&["tv"]).await;
    let web = backends(&["web"]).await;
    let r = router(&format!(
        "[[routes]]\nid = \"tv\"\nhost = \"tv.example.net\"\npath_prefix = \"/api\"\npool = \"tv\"\n{}{}{}",
        route("web", "/api", "web"),
        pool("tv", "round_robin", &tv, &[]),
        pool("web", "round_robin", &web, &[])
    ));
    let client = Client::new(r.addr());
    assert_eq!(
        client
            .get_with("/api/x", &[("host", "TV.example.net:8080")])
            .await
            .backend(),
        "tv"
    );
    assert_eq!(
        client
            .get_with("/api/x", &[("host", "other.example.net")])
            .await
            .backend(),
        "web"
    );
}
