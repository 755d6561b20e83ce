//! The WebSocket relay's frame walk (`relay::flow::Flow`), fed what a client or a backend
//! sends on an open session.
//!
//! Input: one byte of settings (bit 0: from a client, else a backend; bit 1: `permessage-deflate`
//! negotiated; bit 2: a 64-byte message limit instead of 1 MiB; bits 3..8: a read size 1..=32),
//! then the session's bytes.
//! Checks: no panic; what passes is always a prefix of what was sent (bytes are passed, never
//! changed or reordered); the bytes in one read and in reads of the chosen size pass the same
//! prefix, end the same way (a close, a refusal with the same code, or the sender's end) and
//! count the same whole messages.
#![no_main]

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use libfuzzer_sys::fuzz_target;
use switchyard::relay::flow::{Event, Flow};
use switchyard::relay::frame::{Rules, Sender};
use tokio::io::{AsyncRead, ReadBuf};

/// A sender whose reads return these chunks, one per read, then its end.
struct Chunks(VecDeque<Vec<u8>>);

impl AsyncRead for Chunks {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if let Some(mut chunk) = self.0.pop_front() {
            let n = chunk.len().min(buf.remaining());
            buf.put_slice(&chunk[..n]);
            if n < chunk.len() {
                self.0.push_front(chunk.split_off(n));
            }
        }
        Poll::Ready(Ok(()))
    }
}

/// What passed, how the flow ended (a refusal by its code) and the whole messages counted.
fn run(rules: Rules, input: &[u8], step: usize) -> (Vec<u8>, Result<bool, u16>, u64) {
    let mut src = Chunks(input.chunks(step).map(<[u8]>::to_vec).collect());
    let mut out = Vec::new();
    let mut flow = Flow::new(rules, Vec::new());
    let mut cx = Context::from_waker(Waker::noop());
    let end = loop {
        if let Poll::Ready(event) = flow.poll_relay(&mut cx, &mut src, &mut out) {
            break match event {
                Event::Closed => Ok(true),
                Event::SourceGone => Ok(false),
                Event::Refused(violation) => Err(violation.code),
                Event::SinkGone => panic!("a Vec never refuses bytes"),
            };
        }
    };
    (out, end, flow.messages())
}

fuzz_target!(|data: &[u8]| {
    let Some((&settings, input)) = data.split_first() else {
        return;
    };
    let rules = Rules {
        from: if settings & 1 != 0 { Sender::Client } else { Sender::Backend },
        deflate: settings & 2 != 0,
        max_message: if settings & 4 != 0 { 64 } else { 1 << 20 },
    };
    let step = usize::from(settings >> 3) + 1;
    let whole = run(rules, input, input.len().max(1));
    assert!(input.starts_with(&whole.0), "passed bytes that were not sent");
    let split = run(rules, input, step);
    assert_eq!(whole, split, "reads of {step} bytes passed or ended differently");
});
