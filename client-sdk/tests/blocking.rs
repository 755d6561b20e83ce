//! The blocking facade, from plain threads with no runtime of their own: requests and a
//! session against a real router and echo backend; and misuse from async code is an error,
//! not a panic.

mod support;

use std::time::Duration;

use support::*;
use switchyard_client::{Client, ErrorKind, Event, Message, blocking};

#[test]
fn a_plain_thread_makes_requests_and_holds_a_session() {
    // The router and the backend run on their own runtime: the app under test has none.
    let fixture = tokio::runtime::Runtime::new().unwrap();
    let bs = fixture.block_on(backends(&["b1"]));
    let (_router, addr) = fixture.block_on(async { router(&bs) });
    let client =
        blocking::Client::new(Client::builder().region("r", format!("http://{addr}"))).unwrap();
    let resp = client.get("/titles").unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(resp.backend(), Some("b1"));
    assert_eq!(client.post("/buy", "x").unwrap().status, 200);

    let mut session = client.session("/ws/echo").unwrap();
    match session.next_timeout(DEADLINE).unwrap() {
        Some(Event::Connected { region, .. }) => assert_eq!(region, "r"),
        other => panic!("{other:?}"),
    }
    session.send(Message::text("hi")).unwrap();
    assert_eq!(
        session.next_timeout(DEADLINE).unwrap(),
        Some(Event::Message(Message::text("b1: hi")))
    );
    let quiet = session
        .next_timeout(Duration::from_millis(50))
        .expect_err("nothing more to read");
    assert_eq!(quiet.kind, ErrorKind::Timeout(Duration::from_millis(50)));
    // Other threads may share the client.
    let other = client.clone();
    std::thread::spawn(move || assert_eq!(other.get("/x").unwrap().status, 200))
        .join()
        .unwrap();
    session.close().expect("a clean close");
    drop(client);
    drop(fixture);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn called_from_async_code_it_says_so_instead_of_panicking() {
    let client =
        blocking::Client::new(Client::builder().region("r", "http://127.0.0.1:0")).unwrap();
    let err = client.get("/x").expect_err("misuse");
    assert!(
        matches!(&err.kind, ErrorKind::Invalid(why) if why.contains("async")),
        "{err}"
    );
    assert!(!err.retryable);
    drop(client); // dropping it here must not panic either
}
