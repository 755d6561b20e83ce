//! Session-token parsing (`session::token::TokenKey::check`), fed what a client sends as its
//! `X-Switchyard-Session` header or cookie.
//!
//! Checks: no panic; a token that verifies is exactly the token the key signs for its id
//! (one spelling only: no other string, however close, passes); a token signed by the
//! previous key (inside its window) is reported as such; and the first 16 bytes, taken as a
//! session id, round-trip through `sign` and `check`.
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use switchyard::session::token::{TokenKey, Verified};
use uuid::Uuid;

fuzz_target!(|data: &[u8]| {
    let key = TokenKey::new(b"fuzz: the current key").with_previous(
        b"fuzz: the previous key",
        Instant::now() + Duration::from_secs(3600),
    );
    let previous = TokenKey::new(b"fuzz: the previous key");
    if let Ok(text) = std::str::from_utf8(data) {
        match key.check(text) {
            Some(Verified::Current(id)) => assert_eq!(key.sign(id), text),
            Some(Verified::Previous(id)) => assert_eq!(previous.sign(id), text),
            None => {}
        }
        assert_eq!(key.verify(text), key.check(text).map(Verified::id));
    }
    if let Ok(bytes) = <[u8; 16]>::try_from(data.get(..16).unwrap_or_default()) {
        let id = Uuid::from_bytes(bytes);
        assert_eq!(key.check(&key.sign(id)), Some(Verified::Current(id)));
        assert_eq!(key.check(&previous.sign(id)), Some(Verified::Previous(id)));
    }
});
