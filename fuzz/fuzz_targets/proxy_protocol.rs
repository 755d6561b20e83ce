//! The PROXY protocol v1/v2 parser (`proxy_protocol::parse`), fed the first bytes of a
//! connection on a `proxy_protocol = true` listener.
//!
//! Checks: no panic; an accepted header says how many bytes it took, at most what was there,
//! and parsing exactly those bytes gives the same header (it does not depend on what
//! follows); and any shorter prefix of an accepted header is "need more", never an error or
//! a different header (headers arrive split across TCP segments).
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchyard::proxy_protocol::parse;

fuzz_target!(|data: &[u8]| {
    let Ok(Some(header)) = parse(data) else {
        return;
    };
    assert!(
        header.len > 0 && header.len <= data.len(),
        "len {}",
        header.len
    );
    let alone = parse(&data[..header.len]);
    assert!(
        matches!(&alone, Ok(Some(h)) if *h == header),
        "{alone:?} vs {header:?}"
    );
    for cut in 0..header.len {
        assert_eq!(parse(&data[..cut]), Ok(None), "prefix of {cut} bytes");
    }
});
