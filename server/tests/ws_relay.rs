//! The pass-through relay through a real router and a real backend: frames pass as the bytes
//! they are, so what a pass-through relay can get wrong is tried here — a header that arrives
//! a byte at a time, a 64-bit length, control frames inside a fragmented message, and a close
//! from either side while the other is still writing. (Every cut of a header across reads is
//! tried deterministically in `relay::flow`'s unit tests; here the bytes cross real sockets.)

mod support;

use std::time::Duration;

use futures_util::SinkExt;
use support::*;
use tokio::io::AsyncWriteExt;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};

fn ws_router(bs: &[TestBackend]) -> switchyard::RouterHandle {
    router(&format!(
        "{}{}",
        route("ws", "/ws", "ws"),
        pool_with(
            "ws",
            "least_connections",
            bs,
            "health = { kind = \"none\" }"
        )
    ))
}

/// A masked client frame, as a client's WebSocket library writes it.
fn masked_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    switchyard::relay::frame::encode(true, opcode, payload, Some([0x3c, 0xa1, 0x07, 0x5e]))
}

#[tokio::test]
async fn frame_headers_written_a_byte_at_a_time_pass_intact() {
    let bs = backends(&["ws-1"]).await;
    let r = ws_router(&bs);
    let (mut ws, _) = connect(r.addr(), &[]).await;
    ws.get_ref().set_nodelay(true).unwrap();
    // A 16-bit and a 64-bit length: each header byte in a segment of its own.
    for payload in [vec![b'm'; 300], vec![b'l'; 70_000]] {
        let frame = masked_frame(0x2, &payload);
        let header = if payload.len() > 0xFFFF { 14 } else { 8 };
        let socket = ws.get_mut();
        for byte in &frame[..header] {
            socket.write_all(&[*byte]).await.unwrap();
            socket.flush().await.unwrap();
            tokio::task::yield_now().await;
        }
        socket.write_all(&frame[header..]).await.unwrap();
        let mut expected = b"ws-1: ".to_vec();
        expected.extend_from_slice(&payload);
        assert_eq!(next(&mut ws).await, Message::binary(expected));
    }
}

#[tokio::test]
async fn a_message_with_a_64_bit_length_passes_whole_both_ways() {
    let bs = backends(&["ws-1"]).await;
    let r = ws_router(&bs);
    let (mut ws, _) = connect(r.addr(), &[]).await;
    // Over 65,535 bytes: the length takes 8 bytes each way.
    let payload: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    ws.send(Message::binary(payload.clone())).await.unwrap();
    let mut expected = b"ws-1: ".to_vec();
    expected.extend_from_slice(&payload);
    assert_eq!(next(&mut ws).await, Message::binary(expected));
}

#[tokio::test]
async fn control_frames_inside_a_fragmented_message_pass_and_the_message_arrives_whole() {
    let bs = backends(&["ws-1"]).await;
    let r = ws_router(&bs);
    let (mut ws, _) = connect(r.addr(), &[]).await;
    let frames = [
        Frame::message(b"frag".to_vec(), OpCode::Data(Data::Text), false),
        Frame::ping(b"between".to_vec()),
        Frame::message(b"ment".to_vec(), OpCode::Data(Data::Continue), true),
    ];
    for frame in frames {
        ws.send(Message::Frame(frame)).await.unwrap();
    }
    // The backend answers the ping (once: the router passes it, it does not answer it) and
    // echoes the whole message; the two may come in either order.
    let mut got = vec![next(&mut ws).await, next(&mut ws).await];
    got.sort_by_key(|m| m.is_text());
    assert_eq!(
        got,
        [
            Message::Pong(b"between".to_vec().into()),
            Message::text("ws-1: fragment")
        ]
    );
}

#[tokio::test]
async fn a_client_closing_while_the_backend_still_writes_gets_the_backends_close() {
    let bs = backends(&["ws-1"]).await;
    let r = ws_router(&bs);
    let (mut ws, _) = connect(r.addr(), &[]).await;
    // The backend is still echoing these when the client's close goes out.
    for i in 0..200 {
        ws.feed(Message::text(format!("message {i} {}", "x".repeat(1000))))
            .await
            .unwrap();
    }
    ws.flush().await.unwrap();
    ws.close(Some(CloseFrame {
        code: 4100u16.into(),
        reason: "client done".into(),
    }))
    .await
    .unwrap();
    assert_eq!(until_close(&mut ws).await, Some(4100));
    sessions_end(&r, "ws").await;
}

#[tokio::test]
async fn a_backend_closing_while_the_client_still_writes_reaches_the_client() {
    let bs = backends(&["ws-1"]).await;
    let r = ws_router(&bs);
    let (mut ws, _) = connect(r.addr(), &[]).await;
    ws.feed(Message::text("close:4321:backend says bye"))
        .await
        .unwrap();
    // The client keeps writing after asking: these cross the backend's close on the way. (A
    // few, in the same flush: more could reach the backend after it has closed, and a socket
    // closed with unread data resets, which can destroy its close before anyone reads it —
    // the backend's doing, not the router's.)
    for i in 0..5 {
        ws.feed(Message::text(format!("late {i}"))).await.unwrap();
    }
    ws.flush().await.unwrap();
    assert_eq!(until_close(&mut ws).await, Some(4321));
    sessions_end(&r, "ws").await;
}

#[tokio::test]
async fn an_unmasked_client_frame_is_a_protocol_error_and_the_backend_hears_nothing_of_it() {
    let bs = backends(&["ws-1"]).await;
    let r = ws_router(&bs);
    let (mut ws, _) = connect(r.addr(), &[]).await;
    ws.send(Message::text("before")).await.unwrap();
    assert_eq!(next(&mut ws).await, Message::text("ws-1: before"));
    // An unmasked text frame "after": clients must mask (RFC 6455 §5.1).
    ws.get_mut().write_all(b"\x81\x05after").await.unwrap();
    let close = match tokio::time::timeout(
        Duration::from_secs(10),
        futures_util::StreamExt::next(&mut ws),
    )
    .await
    .expect("the router's close within the deadline")
    {
        Some(Ok(Message::Close(frame))) => frame,
        other => panic!("only the router's close may follow, got {other:?}"),
    };
    assert_eq!(close.map(|f| u16::from(f.code)), Some(1002));
    sessions_end(&r, "ws").await;
}
