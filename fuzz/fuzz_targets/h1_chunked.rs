//! The chunked body decoder (`upstream::h1::codec::ChunkedDecoder`), fed what a backend sends
//! after a `Transfer-Encoding: chunked` head.
//!
//! Input: one byte choosing a read size (1..=64), then the body bytes.
//! Checks: no panic; decoding the bytes in one buffer and in reads of that size gives the
//! same data and the same outcome (done, need more, or an error), except that a chunk-size or
//! trailer line longer than the limit is refused as soon as the limit is passed, which a
//! single buffer holding the whole line may not reach; after `Done` nothing past the body is
//! consumed.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use switchyard::upstream::h1::codec::{ChunkedDecoder, Decoded, ParseError};

#[derive(Debug, PartialEq)]
enum End {
    Done(usize),
    NeedMore,
    Error(ParseError),
}

/// Decodes `input` handed over `step` bytes at a time: the data, how it ended and, once done,
/// how many bytes were left after the body.
fn run(input: &[u8], step: usize) -> (Vec<u8>, End) {
    let mut decoder = ChunkedDecoder::default();
    let mut buf = BytesMut::new();
    let mut data = Vec::new();
    let mut fed = 0;
    loop {
        match decoder.decode(&mut buf) {
            Ok(Decoded::Data(bytes)) => {
                assert!(!bytes.is_empty(), "empty data");
                data.extend_from_slice(&bytes);
            }
            Ok(Decoded::Done) => return (data, End::Done(buf.len() + input.len() - fed)),
            Ok(Decoded::NeedMore) if fed < input.len() => {
                let next = (fed + step).min(input.len());
                buf.extend_from_slice(&input[fed..next]);
                fed = next;
            }
            Ok(Decoded::NeedMore) => return (data, End::NeedMore),
            Err(err) => return (data, End::Error(err)),
        }
    }
}

fn too_long(end: &End) -> bool {
    matches!(end, End::Error(ParseError::Chunk(m)) if m.ends_with("too long"))
}

fuzz_target!(|data: &[u8]| {
    let Some((&step, body)) = data.split_first() else {
        return;
    };
    let step = usize::from(step % 64) + 1;
    let (whole_data, whole_end) = run(body, body.len().max(1));
    let (split_data, split_end) = run(body, step);
    if too_long(&split_end) {
        return;
    }
    assert_eq!(whole_end, split_end, "one read vs reads of {step}");
    assert_eq!(whole_data, split_data);
});
