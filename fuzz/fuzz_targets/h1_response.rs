//! The backend response-head parser (`upstream::h1::codec::parse_response_head`).
//!
//! Input: one flag byte (bit 0: the request was a HEAD), then the bytes a backend sent.
//! Checks: no panic; a parsed head is consistent (never a 1xx; HEAD, 204 and 304 have no body; a length
//! framing is the backend's `Content-Length`; a close-delimited body is never reusable);
//! the head is consumed from the front of the buffer and nothing more; and the same bytes
//! arriving in two reads give the same answer (a `None` for the first part, or the same error).
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use switchyard::upstream::h1::codec::{Framing, parse_response_head};

fuzz_target!(|data: &[u8]| {
    let Some((&flags, bytes)) = data.split_first() else {
        return;
    };
    let head_request = flags & 1 == 1;
    let mut buf = BytesMut::from(bytes);
    let whole = parse_response_head(&mut buf, head_request);
    if let Ok(Some(head)) = &whole {
        // Interim answers are skipped; a status under 100 is passed on (the request path
        // answers it with a 502).
        assert!(!(100..200).contains(&head.status), "status {}", head.status);
        if head_request || head.status == 204 || head.status == 304 {
            assert_eq!(head.framing, Framing::Empty);
        }
        if let Framing::Length(n) = head.framing {
            assert_eq!(head.content_length, Some(n));
        }
        if head.framing == Framing::Close {
            assert!(!head.reusable);
        }
        assert!(buf.len() < bytes.len(), "a head was parsed from nothing");
        assert_eq!(
            &bytes[bytes.len() - buf.len()..],
            &buf[..],
            "more than the head consumed"
        );
    }
    // The same bytes in two reads: the first part alone is "need more" or already decided.
    let cut = usize::from(flags >> 1) % (bytes.len() + 1);
    let mut split = BytesMut::from(&bytes[..cut]);
    let first = parse_response_head(&mut split, head_request);
    if let Ok(None) = first {
        split.extend_from_slice(&bytes[cut..]);
        let second = parse_response_head(&mut split, head_request);
        match (&whole, &second) {
            (Ok(Some(a)), Ok(Some(b))) => {
                assert_eq!((a.status, a.framing), (b.status, b.framing));
                assert_eq!(buf, split);
            }
            (Ok(None), Ok(None)) | (Err(_), Err(_)) => {}
            (a, b) => panic!("one read: {a:?}, two reads: {b:?}"),
        }
    }
});
