//! A WebSocket session through `switchyard demo` that survives a drain: run the demo, start
//! this, then drain the backend it names with the admin token the demo printed:
//!
//!     cargo run -p switchyard-client --example session      # SWITCHYARD_URL=... for another router
//!     curl -s -X POST -H 'Authorization: Bearer TOKEN' \
//!          http://127.0.0.1:9901/admin/v1/backends/ws-1/drain
//!
//! The router hands the session off (`4001 moved; delivered=N; retry_after_ms=M`): the session
//! reconnects after that wait with the same session id, re-sends the messages the backend had
//! not read, and goes on — `Resumed { recovered: true, .. }`, every message echoed once.

use std::time::Duration;

use switchyard_client::{Client, Event, Message};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The router's address: `SWITCHYARD_URL`, default the demo's.
    let router = std::env::var("SWITCHYARD_URL").unwrap_or_else(|_| "http://127.0.0.1:8080".into());
    let client = Client::builder().region("local", router.as_str()).build()?;
    let mut session = client.session("/ws/echo").await?;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut n = 0;
    loop {
        tokio::select! {
            _ = tick.tick() => {
                n += 1;
                session.send(Message::text(format!("message {n}")))?;
            }
            event = session.next() => match event {
                Some(Event::Closed { code, reason }) => {
                    println!("closed for good: {code} {reason}");
                    return Ok(());
                }
                Some(event) => println!("{event:?}   (session id {:?})", client.session_id()),
                None => return Ok(()),
            }
        }
    }
}
