//! The admin API's JSON bodies (`admin::api::parse_body`: the handlers' own decoding, with
//! unknown fields refused, and their value checks).
//!
//! Input: one byte choosing the body (drain, undrain, weight, evacuate, add backend, reload),
//! then the body. Checks: no panic; every refusal has a message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchyard::admin::api::{BodyKind, parse_body};

const KINDS: [BodyKind; 6] = [
    BodyKind::Drain,
    BodyKind::Undrain,
    BodyKind::Weight,
    BodyKind::Evacuate,
    BodyKind::AddBackend,
    BodyKind::Reload,
];

fuzz_target!(|data: &[u8]| {
    let Some((&kind, body)) = data.split_first() else {
        return;
    };
    let kind = KINDS[usize::from(kind) % KINDS.len()];
    if let Err(message) = parse_body(kind, body) {
        assert!(!message.is_empty(), "{kind:?}: a refusal without a message");
    }
});
