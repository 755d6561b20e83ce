//! One direction of a session: bytes read from one end are checked frame by frame and written
//! to the other end as they are. A read goes into the worker's scratch buffer; only bytes the
//! receiver did not take at once are kept (in `pending`), so an idle flow holds no buffer.

use std::cell::RefCell;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

use super::frame::{Completed, Header, MAX_HEADER_BYTES, Position, Rules, Violation};

/// Bytes one read takes.
const READ_BYTES: usize = 16 * 1024;
/// Reads one poll makes before it yields to the worker's other tasks.
const READS_PER_POLL: usize = 16;

thread_local! {
    /// The worker's scratch buffer: room for a header carried over from the previous read,
    /// then one read. Shared by every flow on the worker (polls never nest).
    static SCRATCH: RefCell<Box<[u8]>> =
        RefCell::new(vec![0u8; MAX_HEADER_BYTES + READ_BYTES].into_boxed_slice());
}

/// What ended a flow. Everything that preceded it has been written to the receiver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A close frame passed whole — or, with [`Flow::hold_close`], was read and not passed.
    Closed,
    /// The sender broke the protocol or the size limit: nothing of the offending frame passed.
    Refused(Violation),
    /// The sender's connection ended or failed.
    SourceGone,
    /// The receiver's connection failed or closed.
    SinkGone,
}

/// One direction's state between polls: where its frames stand, a header split across
/// reads, and bytes the receiver has not taken yet.
#[derive(Debug)]
pub struct Flow {
    rules: Rules,
    position: Position,
    /// Header bytes from the end of the last read: not passed on until the header is whole.
    carry: [u8; MAX_HEADER_BYTES],
    carried: u8,
    /// Bytes to write before reading more (empty, with no allocation, while idle).
    pending: Vec<u8>,
    written: usize,
    /// Reported once `pending` is written.
    event: Option<Event>,
    stopped: bool,
    /// A close frame being read and not passed ([`Flow::hold_close`]).
    holding: bool,
    hold_close: bool,
    /// Bytes that arrived with the handshake, read before the socket.
    preread: Vec<u8>,
    /// Data messages passed whole.
    messages: u64,
    /// When the last bytes were read (the session's activity).
    read_at: Instant,
    /// Since when bytes have waited for a receiver that does not take them.
    blocked_since: Option<Instant>,
    /// The sender broke the frame rules: what it sends next is not frames to parse.
    unframed: bool,
    /// The code of the last close frame the sender sent (when its first bytes came in one
    /// read with the header, as they practically always do).
    close_code: Option<u16>,
}

impl Flow {
    /// A flow whose first bytes are `preread` (read with the handshake), then the socket's.
    pub fn new(rules: Rules, preread: Vec<u8>) -> Flow {
        Flow {
            rules,
            position: Position::default(),
            carry: [0; MAX_HEADER_BYTES],
            carried: 0,
            pending: Vec::new(),
            written: 0,
            event: None,
            stopped: false,
            holding: false,
            hold_close: false,
            preread,
            messages: 0,
            read_at: Instant::now(),
            blocked_since: None,
            unframed: false,
            close_code: None,
        }
    }

    /// Data messages passed whole so far.
    pub fn messages(&self) -> u64 {
        self.messages
    }

    /// From now on a close frame from the sender ends the flow without being passed on: the
    /// router answers the receiver with a close of its own.
    pub fn hold_close(&mut self) {
        self.hold_close = true;
    }

    /// The code of the sender's close frame, if it sent one with a code.
    pub fn close_code(&self) -> Option<u16> {
        self.close_code
    }

    /// When bytes were last read from the sender (or the flow started).
    pub fn read_at(&self) -> Instant {
        self.read_at
    }

    /// Since when bytes have been waiting for a receiver that does not take them.
    pub fn blocked_since(&self) -> Option<Instant> {
        self.blocked_since
    }

    /// The receiver's stream is between frames: a frame of the router's fits in.
    pub fn at_boundary(&self) -> bool {
        self.position.at_boundary() || self.holding
    }

    /// Queues a frame of the router's for the receiver, after what is already queued. Only
    /// between frames; `false` (and nothing queued) when a frame is half passed.
    pub fn push(&mut self, frame: &[u8]) -> bool {
        if !self.at_boundary() {
            return false;
        }
        self.pending.extend_from_slice(frame);
        true
    }

    /// Relays until an [`Event`]; `Pending` while neither end is ready. After the event the
    /// flow reads no more.
    pub fn poll_relay<S, D>(
        &mut self,
        cx: &mut Context<'_>,
        src: &mut S,
        dst: &mut D,
    ) -> Poll<Event>
    where
        S: AsyncRead + Unpin,
        D: AsyncWrite + Unpin,
    {
        for _ in 0..READS_PER_POLL {
            match self.poll_write_out(cx, dst) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(_)) => return self.end(Event::SinkGone),
                Poll::Pending => return Poll::Pending,
            }
            if let Some(event) = self.event.take() {
                return self.end(event);
            }
            if self.stopped {
                return Poll::Pending;
            }
            let read = SCRATCH.with_borrow_mut(|scratch| self.read_and_pass(cx, src, dst, scratch));
            match read {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(event)) => self.event = Some(event),
                Poll::Ready(None) => {}
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    /// Writes what is queued (router frames, or bytes the receiver did not take).
    pub fn poll_write_out<D>(&mut self, cx: &mut Context<'_>, dst: &mut D) -> Poll<io::Result<()>>
    where
        D: AsyncWrite + Unpin,
    {
        while self.written < self.pending.len() {
            match Pin::new(&mut *dst).poll_write(cx, &self.pending[self.written..]) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => self.written += n,
                Poll::Ready(Err(err)) => return Poll::Ready(Err(err)),
                Poll::Pending => {
                    self.blocked_since.get_or_insert_with(Instant::now);
                    return Poll::Pending;
                }
            }
        }
        self.blocked_since = None;
        if !self.pending.is_empty() {
            // Written out: the buffer goes back, so an idle session holds none.
            self.pending = Vec::new();
            self.written = 0;
        }
        Pin::new(dst).poll_flush(cx)
    }

    fn end(&mut self, event: Event) -> Poll<Event> {
        self.stopped = true;
        self.unframed |= matches!(event, Event::Refused(_));
        Poll::Ready(event)
    }

    /// One read (the preread bytes first), passed on as far as the frames allow; what the
    /// receiver does not take is queued. `Ready(Some)` ends the flow once the queue is out.
    fn read_and_pass<S, D>(
        &mut self,
        cx: &mut Context<'_>,
        src: &mut S,
        dst: &mut D,
        scratch: &mut [u8],
    ) -> Poll<Option<Event>>
    where
        S: AsyncRead + Unpin,
        D: AsyncWrite + Unpin,
    {
        let carried = usize::from(self.carried);
        let start = MAX_HEADER_BYTES - carried;
        scratch[start..MAX_HEADER_BYTES].copy_from_slice(&self.carry[..carried]);
        let room = &mut scratch[MAX_HEADER_BYTES..];
        let n = if self.preread.is_empty() {
            let mut buf = ReadBuf::new(room);
            match Pin::new(&mut *src).poll_read(cx, &mut buf) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(_)) => return Poll::Ready(Some(Event::SourceGone)),
                Poll::Ready(Ok(())) if buf.filled().is_empty() => {
                    return Poll::Ready(Some(Event::SourceGone));
                }
                Poll::Ready(Ok(())) => buf.filled().len(),
            }
        } else {
            let n = self.preread.len().min(room.len());
            room[..n].copy_from_slice(&self.preread[..n]);
            self.preread.drain(..n);
            if self.preread.is_empty() {
                self.preread = Vec::new();
            }
            n
        };
        self.read_at = Instant::now();
        self.carried = 0;
        if self.unframed {
            return Poll::Ready(None);
        }
        let data = &scratch[start..MAX_HEADER_BYTES + n];
        let (forward, event) = self.scan(data);
        let mut out = &data[..forward];
        while !out.is_empty() {
            match Pin::new(&mut *dst).poll_write(cx, out) {
                Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => {
                    return Poll::Ready(Some(Event::SinkGone));
                }
                Poll::Ready(Ok(written)) => out = &out[written..],
                Poll::Pending => {
                    self.pending.extend_from_slice(out);
                    self.blocked_since = Some(Instant::now());
                    break;
                }
            }
        }
        Poll::Ready(event)
    }

    /// Walks the frames in `data`: how many leading bytes may pass, and the event (if any)
    /// that ends the flow after them. A header cut off at the end is carried to the next read.
    fn scan(&mut self, data: &[u8]) -> (usize, Option<Event>) {
        let mut at = 0;
        let mut forward = 0;
        loop {
            if !self.position.at_boundary() {
                let (took, completed) = self.position.pass(data.len() - at);
                at += took;
                if !self.holding {
                    forward = at;
                }
                match completed {
                    Completed::Nothing => return (forward, None),
                    Completed::Frame => {}
                    Completed::Message => self.messages += 1,
                    Completed::Close => {
                        self.holding = false;
                        return (forward, Some(Event::Closed));
                    }
                }
            }
            if at == data.len() {
                return (forward, None);
            }
            let header = match Header::parse(&data[at..]) {
                Ok(Some(header)) => header,
                Ok(None) => {
                    let rest = &data[at..];
                    self.carry[..rest.len()].copy_from_slice(rest);
                    self.carried = rest.len() as u8;
                    return (forward, None);
                }
                Err(violation) => return (forward, Some(Event::Refused(violation))),
            };
            if let Err(violation) = self.position.start(&header, &self.rules) {
                return (forward, Some(Event::Refused(violation)));
            }
            if header.is_close() {
                self.close_code = close_code(&data[at..], &header);
            }
            self.holding = header.is_close() && self.hold_close;
            at += header.len;
            if !self.holding {
                forward = at;
            }
        }
    }

    /// Reads from the sender and drops what it reads until its close frame or its end: the
    /// wait for a peer's close after the router sent its own. A sender that broke the frame
    /// rules is read until its end (the rest of an oversized message): closing a socket with
    /// unread data resets it, and the reset could destroy the router's close before the peer
    /// reads it.
    pub fn poll_discard<S>(&mut self, cx: &mut Context<'_>, src: &mut S) -> Poll<()>
    where
        S: AsyncRead + Unpin,
    {
        self.hold_close = true;
        self.stopped = false;
        loop {
            let read = SCRATCH.with_borrow_mut(|scratch| {
                self.read_and_pass(cx, src, &mut tokio::io::sink(), scratch)
            });
            match read {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Event::Refused(_))) => self.unframed = true,
                Poll::Ready(Some(_)) => return Poll::Ready(()),
                Poll::Ready(None) => {}
            }
        }
    }
}

/// The code at the start of a close frame's payload (unmasked), if `frame` holds it.
fn close_code(frame: &[u8], header: &Header) -> Option<u16> {
    let code = frame.get(header.len..header.len + 2)?;
    let mut code = [code[0], code[1]];
    if header.masked {
        let key = &frame[header.len - 4..header.len];
        code[0] ^= key[0];
        code[1] ^= key[1];
    }
    (header.payload >= 2).then_some(u16::from_be_bytes(code))
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::task::Waker;

    use super::super::frame::Sender;
    use super::*;

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

    const RULES: Rules = Rules {
        from: Sender::Client,
        max_message: 1 << 20,
        deflate: false,
    };

    /// A masked client frame.
    fn frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
        super::super::frame::encode(fin, opcode, payload, Some([7, 1, 9, 3]))
    }

    /// Relays `chunks` into a buffer until the flow ends: what passed, and how it ended.
    fn relay(flow: &mut Flow, chunks: Vec<Vec<u8>>) -> (Vec<u8>, Event) {
        let mut src = Chunks(chunks.into());
        let mut out = Vec::new();
        let mut cx = Context::from_waker(Waker::noop());
        loop {
            if let Poll::Ready(event) = flow.poll_relay(&mut cx, &mut src, &mut out) {
                return (out, event);
            }
        }
    }

    /// Text "ab" in two fragments with a ping between them, a 64-bit-length binary message,
    /// and a small text: the frames every split below cuts.
    fn stream() -> (Vec<u8>, usize) {
        let mut bytes = frame(false, 0x1, b"a");
        bytes.extend(frame(true, 0x9, b"ping"));
        bytes.extend(frame(true, 0x0, b"b"));
        let big_at = bytes.len();
        bytes.extend(frame(true, 0x2, &vec![5u8; 70_000]));
        bytes.extend(frame(true, 0x1, b"end"));
        (bytes, big_at)
    }

    #[test]
    fn frames_cut_at_every_byte_of_their_headers_pass_unchanged() {
        let (bytes, big_at) = stream();
        let mut cuts: Vec<Vec<usize>> = (1..big_at + 20).map(|c| vec![c]).collect();
        // Every pair of cuts inside the 64-bit length header (14 bytes).
        for a in big_at..big_at + 14 {
            for b in a + 1..=big_at + 14 {
                cuts.push(vec![a, b]);
            }
        }
        for cut in cuts {
            let mut chunks = Vec::new();
            let mut from = 0;
            for &to in &cut {
                chunks.push(bytes[from..to].to_vec());
                from = to;
            }
            chunks.push(bytes[from..].to_vec());
            let mut flow = Flow::new(RULES, Vec::new());
            let (out, end) = relay(&mut flow, chunks);
            assert_eq!(end, Event::SourceGone, "cuts {cut:?}");
            assert!(out == bytes, "cuts {cut:?}: the bytes changed");
            assert_eq!(flow.messages(), 3, "cuts {cut:?}");
            assert!(flow.pending.capacity() == 0, "an idle flow holds no buffer");
        }
    }

    #[test]
    fn bytes_read_with_the_handshake_pass_first() {
        let (bytes, _) = stream();
        let mut flow = Flow::new(RULES, bytes[..30].to_vec());
        let (out, _) = relay(&mut flow, vec![bytes[30..].to_vec()]);
        assert!(out == bytes);
    }

    #[test]
    fn nothing_of_an_oversized_frame_passes() {
        let small = frame(true, 0x1, b"ok");
        let mut bytes = small.clone();
        bytes.extend(frame(true, 0x2, &vec![0u8; 2000]));
        let rules = Rules {
            max_message: 1000,
            ..RULES
        };
        let mut flow = Flow::new(rules, Vec::new());
        let (out, end) = relay(&mut flow, vec![bytes]);
        assert_eq!(out, small);
        assert!(matches!(end, Event::Refused(v) if v.code == super::super::frame::CLOSE_TOO_BIG));
    }

    #[test]
    fn a_held_close_ends_the_flow_without_passing() {
        let mut bytes = frame(true, 0x1, b"last");
        let data_len = bytes.len();
        bytes.extend(frame(true, 0x8, &[0x03, 0xE8]));
        for cut in 1..bytes.len() {
            let mut flow = Flow::new(RULES, Vec::new());
            flow.hold_close();
            let chunks = vec![bytes[..cut].to_vec(), bytes[cut..].to_vec()];
            let (out, end) = relay(&mut flow, chunks);
            assert_eq!(end, Event::Closed, "cut {cut}");
            assert_eq!(out, bytes[..data_len], "cut {cut}");
            assert!(flow.at_boundary(), "cut {cut}: the router's close fits in");
        }
    }

    #[test]
    fn a_passed_close_ends_the_flow_and_what_follows_is_not_passed() {
        let mut bytes = frame(true, 0x8, &[0x03, 0xE8]);
        let close_len = bytes.len();
        bytes.extend(frame(true, 0x1, b"after"));
        let mut flow = Flow::new(RULES, Vec::new());
        let (out, end) = relay(&mut flow, vec![bytes.clone()]);
        assert_eq!(end, Event::Closed);
        assert_eq!(out, bytes[..close_len]);
        assert_eq!(flow.close_code(), Some(1000), "read through the mask");
    }
}
