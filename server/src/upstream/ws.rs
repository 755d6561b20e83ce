//! The WebSocket handshake toward a backend (RFC 6455 §4.1), made by the router itself so the
//! connection comes back raw — with any frames the backend sent right after its `101` — for
//! the pass-through relay (`relay/`). A backend that answers anything but `101` is read to the
//! end of its answer (bounded), which the client then receives.

use std::io;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::handshake::client::generate_key;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

use super::h1::codec::{self, ChunkedDecoder, Decoded, Framing, MAX_HEAD_BYTES, MAX_HEADERS};
use super::h1::{BackendStream, ResponseHead};

/// Largest refusal body passed on to the client.
pub const MAX_REFUSAL_BODY: usize = 64 * 1024;
/// Read size while the handshake's answer arrives.
const READ_BYTES: usize = 4 * 1024;

/// The backend's handshake request: what the router adds to the WebSocket headers.
#[derive(Debug)]
pub struct Request<'a> {
    /// Origin-form target (`/path?query`).
    pub target: &'a str,
    /// The `Host` header's value.
    pub host: &'a [u8],
    /// More headers, in order (values already valid header values).
    pub headers: &'a [(&'a str, &'a [u8])],
}

/// A backend that took the session.
pub struct Accepted {
    pub stream: BackendStream,
    /// Bytes after the `101`'s head: the backend's first frames, if it sent them at once.
    pub preread: Vec<u8>,
    /// The backend's `Sec-WebSocket-Protocol`, `Sec-WebSocket-Extensions` and `X-Backend-Id`.
    pub protocol: Option<Bytes>,
    pub extensions: Option<Bytes>,
    pub backend_id: Option<Bytes>,
}

/// How the backend answered the handshake.
pub enum Answer {
    Accepted(Box<Accepted>),
    /// Anything but `101`: its head (hop-by-hop headers removed) and body.
    Refused(ResponseHead, Bytes),
}

/// Why the handshake failed.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    #[error("connection failed during the WebSocket handshake: {0}")]
    Io(#[from] io::Error),
    #[error("the backend closed the connection during the WebSocket handshake")]
    Closed,
    #[error("bad WebSocket handshake answer: {0}")]
    Answer(String),
    #[error(transparent)]
    Head(#[from] codec::ParseError),
}

/// Sends the handshake on `stream` and reads the answer.
pub async fn handshake(
    mut stream: BackendStream,
    request: &Request<'_>,
) -> Result<Answer, HandshakeError> {
    let key = generate_key();
    stream.write_all(&request_head(request, &key)).await?;
    stream.flush().await?;
    let mut buf = BytesMut::with_capacity(READ_BYTES);
    loop {
        if stream.read_buf(&mut buf).await? == 0 {
            return Err(HandshakeError::Closed);
        }
        let mut raw = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut answer = httparse::Response::new(&mut raw);
        let len = match answer.parse(&buf) {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD_BYTES => {
                return Err(codec::ParseError::TooLarge.into());
            }
            Ok(httparse::Status::Partial) => continue,
            Err(err) => return Err(codec::ParseError::Head(err.to_string()).into()),
        };
        match answer.code {
            Some(101) => {
                let (protocol, extensions, backend_id) = accepted(answer.headers, &key)?;
                let preread = buf[len..].to_vec();
                return Ok(Answer::Accepted(Box::new(Accepted {
                    stream,
                    preread,
                    protocol,
                    extensions,
                    backend_id,
                })));
            }
            // An interim answer (100 Continue) before the real one.
            Some(100..=199) => {
                let _ = buf.split_to(len);
                continue;
            }
            _ => {}
        }
        let head = codec::parse_response_head(&mut buf, false)?
            .ok_or_else(|| HandshakeError::Answer("incomplete answer head".to_string()))?;
        let body = refusal_body(&mut stream, buf, head.framing).await?;
        return Ok(Answer::Refused(head, body));
    }
}

/// The request head: the WebSocket headers with a fresh key, then the router's.
fn request_head(request: &Request<'_>, key: &str) -> Vec<u8> {
    let mut head = Vec::with_capacity(512);
    head.extend_from_slice(b"GET ");
    head.extend_from_slice(request.target.as_bytes());
    head.extend_from_slice(b" HTTP/1.1\r\nHost: ");
    head.extend_from_slice(request.host);
    head.extend_from_slice(
        b"\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ",
    );
    head.extend_from_slice(key.as_bytes());
    head.extend_from_slice(b"\r\n");
    for (name, value) in request.headers {
        head.extend_from_slice(name.as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(value);
        head.extend_from_slice(b"\r\n");
    }
    head.extend_from_slice(b"\r\n");
    head
}

/// The backend's subprotocol, extensions and id.
type Chosen = (Option<Bytes>, Option<Bytes>, Option<Bytes>);

/// Checks a `101` (RFC 6455 §4.1, the client's checks) and takes what the client needs from
/// it: [`Chosen`].
fn accepted(headers: &[httparse::Header<'_>], key: &str) -> Result<Chosen, HandshakeError> {
    let find = |name: &str| {
        headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value)
    };
    let has_token = |name: &str, token: &str| {
        headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case(name))
            .any(|h| {
                h.value
                    .split(|&b| b == b',')
                    .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
            })
    };
    if !has_token("upgrade", "websocket") {
        return Err(HandshakeError::Answer(
            "101 without Upgrade: websocket".to_string(),
        ));
    }
    if !has_token("connection", "upgrade") {
        return Err(HandshakeError::Answer(
            "101 without Connection: upgrade".to_string(),
        ));
    }
    let expected = derive_accept_key(key.as_bytes());
    if find("sec-websocket-accept") != Some(expected.as_bytes()) {
        return Err(HandshakeError::Answer(
            "Sec-WebSocket-Accept does not match the key".to_string(),
        ));
    }
    let copy = |name| find(name).map(Bytes::copy_from_slice);
    Ok((
        copy("sec-websocket-protocol"),
        copy("sec-websocket-extensions"),
        copy("x-backend-id"),
    ))
}

/// Reads a refusal's body (bounded by [`MAX_REFUSAL_BODY`]).
async fn refusal_body(
    stream: &mut BackendStream,
    mut buf: BytesMut,
    framing: Framing,
) -> Result<Bytes, HandshakeError> {
    let too_big = || HandshakeError::Answer(format!("refusal body over {MAX_REFUSAL_BODY} bytes"));
    match framing {
        Framing::Empty => Ok(Bytes::new()),
        Framing::Length(length) => {
            if length > MAX_REFUSAL_BODY as u64 {
                return Err(too_big());
            }
            while (buf.len() as u64) < length {
                if stream.read_buf(&mut buf).await? == 0 {
                    return Err(HandshakeError::Closed);
                }
            }
            buf.truncate(length as usize);
            Ok(buf.freeze())
        }
        Framing::Close => {
            while stream.read_buf(&mut buf).await? != 0 {
                if buf.len() > MAX_REFUSAL_BODY {
                    return Err(too_big());
                }
            }
            Ok(buf.freeze())
        }
        Framing::Chunked => {
            let mut decoder = ChunkedDecoder::default();
            let mut body = BytesMut::new();
            loop {
                match decoder.decode(&mut buf)? {
                    Decoded::Data(data) => {
                        if body.len() + data.len() > MAX_REFUSAL_BODY {
                            return Err(too_big());
                        }
                        body.extend_from_slice(&data);
                    }
                    Decoded::Done => return Ok(body.freeze()),
                    Decoded::NeedMore => {
                        if stream.read_buf(&mut buf).await? == 0 {
                            return Err(HandshakeError::Closed);
                        }
                    }
                }
            }
        }
    }
}
