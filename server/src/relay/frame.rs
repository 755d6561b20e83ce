//! WebSocket frame headers (RFC 6455 §5.2), read incrementally as bytes pass through the
//! router: where each frame starts and ends, whether it ends a message, and whether it breaks
//! the protocol or the message size limit. Payloads are never read: a client's frames stay
//! masked as the backend expects, a backend's stay unmasked as the client expects.
//!
//! Also the frames the router writes itself: its close frames, masked toward a backend (the
//! router is the backend's client) and unmasked toward a client.

/// Bytes of the longest frame header: 2 + 8 (64-bit length) + 4 (mask key).
pub const MAX_HEADER_BYTES: usize = 14;
/// A close reason is at most 123 bytes on the wire (RFC 6455 §5.5: 125-byte control payload).
pub const MAX_REASON_BYTES: usize = 123;

const OP_CONTINUATION: u8 = 0x0;
const OP_TEXT: u8 = 0x1;
const OP_BINARY: u8 = 0x2;
const OP_CLOSE: u8 = 0x8;
const OP_PING: u8 = 0x9;
const OP_PONG: u8 = 0xA;
const RSV1: u8 = 0b100;

/// Close code: the sender broke the protocol.
pub const CLOSE_PROTOCOL: u16 = 1002;
/// Close code: a message over the size limit.
pub const CLOSE_TOO_BIG: u16 = 1009;

/// Which end a stream of frames comes from: it decides the masking rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sender {
    /// A client's frames must be masked (§5.1).
    Client,
    /// A backend's frames must not be.
    Backend,
}

/// What frames from one end may be.
#[derive(Debug, Clone, Copy)]
pub struct Rules {
    pub from: Sender,
    /// Largest message (all its frames' payloads together).
    pub max_message: u64,
    /// `permessage-deflate` was negotiated end to end: RSV1 may mark a compressed message.
    pub deflate: bool,
}

/// A parsed frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub fin: bool,
    pub rsv: u8,
    pub opcode: u8,
    pub masked: bool,
    pub payload: u64,
    /// Bytes of the header itself.
    pub len: usize,
}

impl Header {
    /// Parses a header from the front of `bytes`; `Ok(None)` when more bytes are needed.
    pub fn parse(bytes: &[u8]) -> Result<Option<Header>, Violation> {
        let [b0, b1, ..] = *bytes else {
            return Ok(None);
        };
        let masked = b1 & 0x80 != 0;
        let extra = match b1 & 0x7F {
            126 => 2,
            127 => 8,
            _ => 0,
        };
        let len = 2 + extra + if masked { 4 } else { 0 };
        if bytes.len() < len {
            return Ok(None);
        }
        let payload = match extra {
            2 => u64::from(u16::from_be_bytes([bytes[2], bytes[3]])),
            8 => {
                let mut be = [0u8; 8];
                be.copy_from_slice(&bytes[2..10]);
                let payload = u64::from_be_bytes(be);
                if payload >> 63 != 0 {
                    return Err(Violation::protocol(
                        "a 64-bit frame length with its high bit set",
                    ));
                }
                payload
            }
            _ => u64::from(b1 & 0x7F),
        };
        Ok(Some(Header {
            fin: b0 & 0x80 != 0,
            rsv: (b0 >> 4) & 0b111,
            opcode: b0 & 0x0F,
            masked,
            payload,
            len,
        }))
    }

    pub fn is_control(&self) -> bool {
        self.opcode >= OP_CLOSE
    }

    pub fn is_close(&self) -> bool {
        self.opcode == OP_CLOSE
    }
}

/// A frame that may not pass: the router closes the sender with `code`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// [`CLOSE_PROTOCOL`] or [`CLOSE_TOO_BIG`].
    pub code: u16,
    pub reason: String,
}

impl Violation {
    fn protocol(reason: impl Into<String>) -> Violation {
        Violation {
            code: CLOSE_PROTOCOL,
            reason: reason.into(),
        }
    }
}

/// Where one direction's stream of frames stands: the frame being passed and the message it
/// belongs to. Checking a header updates it; passing payload bytes moves it on.
#[derive(Debug, Clone, Default)]
pub struct Position {
    /// A frame's header has passed and its payload has not (all) passed yet.
    in_frame: bool,
    /// Payload bytes of the current frame still to pass.
    remaining: u64,
    /// The current frame is a close frame.
    in_close: bool,
    /// The current frame ends a data message.
    ends_message: bool,
    /// A fragmented data message has started and not ended.
    in_message: bool,
    /// Payload bytes of the open message so far (with the current frame's).
    message_bytes: u64,
}

/// What passing payload bytes completed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Completed {
    /// The frame goes on.
    Nothing,
    /// A frame ended (not a close frame, not the end of a message).
    Frame,
    /// A frame ended a data message.
    Message,
    /// A close frame ended.
    Close,
}

impl Position {
    /// Between frames: a header comes next, so the router may place a frame of its own.
    pub fn at_boundary(&self) -> bool {
        !self.in_frame
    }

    /// Payload bytes still to pass in the current frame.
    pub fn remaining(&self) -> u64 {
        self.remaining
    }

    /// Checks a header against `rules` and the message in progress, and starts its frame.
    pub fn start(&mut self, header: &Header, rules: &Rules) -> Result<(), Violation> {
        match (rules.from, header.masked) {
            (Sender::Client, false) => return Err(Violation::protocol("an unmasked client frame")),
            (Sender::Backend, true) => return Err(Violation::protocol("a masked backend frame")),
            _ => {}
        }
        let allowed_rsv = match (rules.deflate, header.opcode) {
            (true, OP_TEXT | OP_BINARY) => RSV1,
            _ => 0,
        };
        if header.rsv & !allowed_rsv != 0 {
            return Err(Violation::protocol("reserved bits set in a frame header"));
        }
        match header.opcode {
            OP_CLOSE | OP_PING | OP_PONG => {
                if !header.fin {
                    return Err(Violation::protocol("a fragmented control frame"));
                }
                if header.payload > 125 {
                    return Err(Violation::protocol("a control frame over 125 bytes"));
                }
                if header.opcode == OP_CLOSE && header.payload == 1 {
                    return Err(Violation::protocol("a close frame with a 1-byte payload"));
                }
            }
            OP_TEXT | OP_BINARY if self.in_message => {
                return Err(Violation::protocol(
                    "a new message before the fragmented one ended",
                ));
            }
            OP_CONTINUATION if !self.in_message => {
                return Err(Violation::protocol(
                    "a continuation frame with no message to continue",
                ));
            }
            OP_TEXT | OP_BINARY | OP_CONTINUATION => {}
            other => return Err(Violation::protocol(format!("unknown opcode {other:#x}"))),
        }
        if !header.is_control() {
            let so_far = match header.opcode {
                OP_CONTINUATION => self.message_bytes,
                _ => 0,
            };
            let total = so_far.saturating_add(header.payload);
            if total > rules.max_message {
                return Err(Violation {
                    code: CLOSE_TOO_BIG,
                    reason: format!(
                        "a message of at least {total} bytes, over the limit of {}",
                        rules.max_message
                    ),
                });
            }
            self.message_bytes = total;
            self.in_message = !header.fin;
            self.ends_message = header.fin;
        } else {
            self.ends_message = false;
        }
        self.in_close = header.is_close();
        self.remaining = header.payload;
        self.in_frame = true;
        Ok(())
    }

    /// Passes up to `available` payload bytes of the current frame; returns how many it took
    /// and what that completed. A frame with no payload completes at once (`available` 0).
    pub fn pass(&mut self, available: usize) -> (usize, Completed) {
        let take = self.remaining.min(available as u64);
        self.remaining -= take;
        let completed = match self.remaining {
            0 if self.in_close => Completed::Close,
            0 if self.ends_message => Completed::Message,
            0 => Completed::Frame,
            _ => Completed::Nothing,
        };
        if self.remaining == 0 {
            self.in_frame = false;
            self.in_close = false;
            self.ends_message = false;
        }
        (take as usize, completed)
    }
}

/// A whole frame: `opcode` with `payload`, final or not, masked with `mask` (toward a backend)
/// or not (toward a client), its length in the shortest form.
pub fn encode(fin: bool, opcode: u8, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    let mut frame = Vec::with_capacity(MAX_HEADER_BYTES + payload.len());
    frame.push(if fin { 0x80 } else { 0 } | opcode);
    let masked = if mask.is_some() { 0x80 } else { 0 };
    match payload.len() {
        n if n < 126 => frame.push(masked | n as u8),
        n if n <= 0xFFFF => {
            frame.push(masked | 126);
            frame.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            frame.push(masked | 127);
            frame.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    match mask {
        Some(key) => {
            frame.extend_from_slice(&key);
            frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
        }
        None => frame.extend_from_slice(payload),
    }
    frame
}

/// A close frame the router sends: `code` and `reason` (cut to [`MAX_REASON_BYTES`] on a
/// character boundary), masked with `mask` toward a backend, unmasked toward a client.
pub fn close_frame(code: u16, reason: &str, mask: Option<[u8; 4]>) -> Vec<u8> {
    let mut end = reason.len().min(MAX_REASON_BYTES);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let mut payload = Vec::with_capacity(2 + end);
    payload.extend_from_slice(&code.to_be_bytes());
    payload.extend_from_slice(&reason.as_bytes()[..end]);
    encode(true, OP_CLOSE, &payload, mask)
}

/// A fresh mask key for a frame toward a backend (RFC 6455 §5.3: unpredictable per frame).
pub fn mask_key() -> [u8; 4] {
    fastrand::u32(..).to_ne_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLIENT: Rules = Rules {
        from: Sender::Client,
        max_message: 1000,
        deflate: false,
    };
    const BACKEND: Rules = Rules {
        from: Sender::Backend,
        max_message: 1000,
        deflate: false,
    };

    fn header(bytes: &[u8]) -> Header {
        Header::parse(bytes).unwrap().unwrap()
    }

    #[test]
    fn lengths_of_every_size_class_are_read() {
        assert_eq!(header(&[0x81, 0x05]).payload, 5);
        assert_eq!(header(&[0x82, 126, 0x01, 0x00]).payload, 256);
        let h = header(&[0x82, 127, 0, 0, 0, 1, 0, 0, 0, 0]);
        assert_eq!((h.payload, h.len), (1 << 32, 10));
        let h = header(&[0x82, 0x80 | 127, 0, 0, 0, 0, 0, 1, 0, 0, 9, 9, 9, 9]);
        assert_eq!((h.payload, h.len, h.masked), (65536, 14, true));
    }

    #[test]
    fn a_header_cut_at_any_byte_asks_for_more() {
        let full = [0x82, 0x80 | 127, 0, 0, 0, 0, 0, 1, 0, 0, 1, 2, 3, 4];
        for cut in 0..full.len() {
            assert_eq!(Header::parse(&full[..cut]), Ok(None), "cut at {cut}");
        }
        assert!(Header::parse(&full).unwrap().is_some());
    }

    #[test]
    fn a_64_bit_length_with_the_high_bit_set_is_a_protocol_error() {
        let err = Header::parse(&[0x82, 127, 0x80, 0, 0, 0, 0, 0, 0, 0]).unwrap_err();
        assert_eq!(err.code, CLOSE_PROTOCOL);
    }

    fn start(pos: &mut Position, bytes: &[u8], rules: &Rules) -> Result<(), Violation> {
        pos.start(&header(bytes), rules)
    }

    #[test]
    fn masking_is_required_from_clients_and_refused_from_backends() {
        let mut pos = Position::default();
        assert!(start(&mut pos, &[0x81, 0x00], &CLIENT).is_err());
        assert!(start(&mut pos, &[0x81, 0x80, 1, 2, 3, 4], &BACKEND).is_err());
        assert!(start(&mut pos, &[0x81, 0x80, 1, 2, 3, 4], &CLIENT).is_ok());
    }

    #[test]
    fn control_frames_may_interleave_a_fragmented_message_and_the_message_counts_once() {
        let mut pos = Position::default();
        start(&mut pos, &[0x01, 0x03], &BACKEND).unwrap(); // text, not fin
        assert_eq!(pos.pass(3), (3, Completed::Frame));
        start(&mut pos, &[0x89, 0x02], &BACKEND).unwrap(); // ping inside
        assert!(!pos.at_boundary());
        assert_eq!(pos.pass(10), (2, Completed::Frame));
        assert!(pos.at_boundary());
        start(&mut pos, &[0x8A, 0x00], &BACKEND).unwrap(); // an empty pong completes at once
        assert_eq!(pos.pass(0), (0, Completed::Frame));
        start(&mut pos, &[0x80, 0x04], &BACKEND).unwrap(); // final continuation
        assert_eq!(pos.pass(2), (2, Completed::Nothing));
        assert_eq!(pos.pass(2), (2, Completed::Message));
        // A continuation now has nothing to continue.
        assert!(start(&mut pos, &[0x80, 0x01], &BACKEND).is_err());
    }

    #[test]
    fn protocol_errors_are_named() {
        let mut pos = Position::default();
        for (bytes, what) in [
            (&[0x09u8, 0x00][..], "fragmented control"),
            (&[0x89, 126, 0, 126][..], "over 125"),
            (&[0x88, 0x01][..], "1-byte"),
            (&[0x83, 0x00][..], "unknown opcode"),
            (&[0xC1, 0x00][..], "reserved bits"),
            (&[0x80, 0x00][..], "no message to continue"),
        ] {
            let err = start(&mut pos, bytes, &BACKEND).unwrap_err();
            assert_eq!(err.code, CLOSE_PROTOCOL);
            assert!(err.reason.contains(what), "{what}: {}", err.reason);
        }
        start(&mut pos, &[0x01, 0x00], &BACKEND).unwrap();
        let err = start(&mut pos, &[0x81, 0x00], &BACKEND).unwrap_err();
        assert!(err.reason.contains("before the fragmented one ended"));
    }

    #[test]
    fn rsv1_passes_only_on_data_frames_when_deflate_was_negotiated() {
        let deflate = Rules {
            deflate: true,
            ..BACKEND
        };
        let mut pos = Position::default();
        assert!(start(&mut pos, &[0xC1, 0x00], &deflate).is_ok());
        assert!(start(&mut pos, &[0xC9, 0x00], &deflate).is_err());
    }

    #[test]
    fn the_size_limit_counts_a_whole_fragmented_message() {
        let mut pos = Position::default();
        start(&mut pos, &[0x02, 126, 0x01, 0xF4], &BACKEND).unwrap(); // 500
        pos.pass(500);
        start(&mut pos, &[0x00, 126, 0x01, 0xF4], &BACKEND).unwrap(); // 1000 in all
        pos.pass(500);
        let err = start(&mut pos, &[0x80, 0x01], &BACKEND).unwrap_err();
        assert_eq!(err.code, CLOSE_TOO_BIG);
        // One frame over the limit on its own.
        let mut pos = Position::default();
        let err = start(&mut pos, &[0x82, 126, 0x03, 0xE9], &BACKEND).unwrap_err();
        assert_eq!(err.code, CLOSE_TOO_BIG);
    }

    #[test]
    fn close_frames_are_masked_toward_backends_and_cut_at_a_character_boundary() {
        let frame = close_frame(1001, "bye", None);
        assert_eq!(frame, [0x88, 5, 0x03, 0xE9, b'b', b'y', b'e']);
        let key = [1, 2, 3, 4];
        let masked = close_frame(1001, "bye", Some(key));
        assert_eq!(&masked[..6], &[0x88, 0x85, 1, 2, 3, 4]);
        let unmasked: Vec<u8> = masked[6..]
            .iter()
            .enumerate()
            .map(|(i, b)| b ^ key[i % 4])
            .collect();
        assert_eq!(unmasked, [0x03, 0xE9, b'b', b'y', b'e']);
        let long = close_frame(4001, &"é".repeat(100), None);
        assert_eq!(
            encode(true, OP_BINARY, &[0; 70_000], None)[..2],
            [0x82, 127]
        );
        assert_eq!(
            encode(false, OP_TEXT, &[0; 300], None)[..4],
            [0x01, 126, 0x01, 0x2C]
        );
        assert!(long.len() - 4 <= MAX_REASON_BYTES);
        assert!(std::str::from_utf8(&long[4..]).is_ok());
    }
}
