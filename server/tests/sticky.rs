//! Sticky sessions: a session token (header or cookie) brings a client back to its backend
//! while that backend takes requests; forged tokens are ignored and counted; a session whose
//! backend went down is re-placed and stays on its new backend; WebSocket sessions resume on
//! their backend too.

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use support::*;
use switchyard::routing::BackendState;

const FAST_HTTP: &str = "health = { kind = \"http\", path = \"/health\", interval = \"100ms\", timeout = \"100ms\", rise = 2, fall = 2 }";

fn sticky_router(bs: &[TestBackend], algorithm: &str) -> switchyard::RouterHandle {
    router(&format!(
        "[[routes]]\nid = \"stream\"\npath_prefix = \"/stream\"\npool = \"stream\"\nsticky = true\n{}",
        pool_with(
            "stream",
            algorithm,
            bs,
            &format!("{FAST_HTTP}\npanic_threshold = 0")
        )
    ))
}

#[tokio::test]
async fn a_session_token_keeps_a_client_on_its_backend() {
    let bs = backends(&["s1", "s2", "s3"]).await;
    let r = sticky_router(&bs, "round_robin");
    let client = Client::new(r.addr());
    let first = client.get("/stream/title").await;
    let token = first
        .header("x-switchyard-session")
        .expect("a token on the first answer")
        .to_string();
    let cookie = first
        .header("set-cookie")
        .expect("a cookie too")
        .to_string();
    assert!(
        cookie.starts_with(&format!("sy_session={token};")),
        "{cookie}"
    );
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    let home = first.backend().to_string();

    for _ in 0..9 {
        let reply = client
            .get_with("/stream/title", &[("x-switchyard-session", &token)])
            .await;
        assert_eq!(reply.backend(), home, "the header token was not honoured");
        assert!(
            reply.header("x-switchyard-session").is_none(),
            "a known session gets no new token"
        );
        let reply = client
            .get_with(
                "/stream/title",
                &[("cookie", &format!("theme=dark; sy_session={token}"))],
            )
            .await;
        assert_eq!(reply.backend(), home, "the cookie token was not honoured");
    }
    // Without a token, round robin spreads requests as usual.
    let mut seen = BTreeSet::new();
    for _ in 0..6 {
        seen.insert(client.get("/stream/title").await.backend().to_string());
    }
    assert_eq!(seen.len(), 3);
}

#[tokio::test]
async fn forged_tokens_are_ignored_and_counted() {
    let bs = backends(&["s1", "s2"]).await;
    let r = sticky_router(&bs, "round_robin");
    let client = Client::new(r.addr());
    let real = client
        .get("/stream/x")
        .await
        .header("x-switchyard-session")
        .unwrap()
        .to_string();
    // Same id, wrong signature.
    let forged = format!("{}.{}", &real[..36], "0".repeat(64));
    let reply = client
        .get_with("/stream/x", &[("x-switchyard-session", &forged)])
        .await;
    let issued = reply
        .header("x-switchyard-session")
        .expect("a forged token gets a new session");
    assert_ne!(issued, forged);
    assert_ne!(
        &issued[..36],
        &real[..36],
        "the forged session id was taken over"
    );
    let metrics = Client::new(r.admin_addr()).get("/metrics").await.text();
    assert!(
        metrics.lines().any(
            |l| l.starts_with("switchyard_session_tokens_rejected_total") && !l.ends_with(" 0")
        ),
        "rejected tokens not counted:\n{metrics}"
    );
}

#[tokio::test]
async fn a_session_whose_backend_goes_down_is_replaced_and_sticks_to_its_new_backend() {
    let bs = backends(&["s1", "s2", "s3"]).await;
    let r = sticky_router(&bs, "round_robin");
    let client = Client::new(r.addr());
    let first = client.get("/stream/x").await;
    let token = first.header("x-switchyard-session").unwrap().to_string();
    let home = first.backend().to_string();
    let index = bs.iter().position(|b| b.id() == home).unwrap();
    bs[index].set_health(503);
    let router = &r;
    eventually("home down", Duration::from_secs(10), || {
        let table = router.table();
        let snap = table.pool("stream").unwrap().load_full();
        snap.backends.iter().find(|b| *b.id == *home).unwrap().state == BackendState::Down
    })
    .await;
    let moved = client
        .get_with("/stream/x", &[("x-switchyard-session", &token)])
        .await;
    assert_ne!(moved.backend(), home);
    let new_home = moved.backend().to_string();
    for _ in 0..6 {
        let reply = client
            .get_with("/stream/x", &[("x-switchyard-session", &token)])
            .await;
        assert_eq!(reply.backend(), new_home, "the record was not moved");
    }
}

#[tokio::test]
async fn a_websocket_session_resumes_on_its_backend() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;

    let bs = backends(&["w1", "w2", "w3"]).await;
    let r = router(&format!(
        "[[routes]]\nid = \"ws\"\npath_prefix = \"/ws\"\npool = \"ws\"\nsticky = true\n{}",
        pool("ws", "least_connections", &bs, &[])
    ));
    let open = |token: Option<String>| {
        let addr = r.addr();
        async move {
            let mut request = format!("ws://{addr}/ws/echo")
                .into_client_request()
                .unwrap();
            if let Some(t) = token {
                request
                    .headers_mut()
                    .insert("x-switchyard-session", t.parse().unwrap());
            }
            let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
            tokio_tungstenite::client_async(request, stream)
                .await
                .expect("handshake")
        }
    };
    let (mut ws, answer) = open(None).await;
    let token = answer.headers()["x-switchyard-session"]
        .to_str()
        .unwrap()
        .to_string();
    let home = answer.headers()["x-backend-id"]
        .to_str()
        .unwrap()
        .to_string();
    ws.close(None).await.unwrap();
    while let Some(Ok(_)) = ws.next().await {}
    for _ in 0..4 {
        let (mut ws, answer) = open(Some(token.clone())).await;
        assert_eq!(answer.headers()["x-backend-id"], home.as_str());
        ws.send(Message::text("again")).await.unwrap();
        let reply = ws.next().await.unwrap().unwrap();
        assert_eq!(reply, Message::text(format!("{home}: again")));
        ws.close(None).await.unwrap();
        while let Some(Ok(_)) = ws.next().await {}
    }
}
