//! The SDK's own WebSocket data message: what an app sends on a session and receives from its
//! backend. The WebSocket library underneath stays private: no type of it appears in a public
//! signature, so it can change without breaking apps or the C and Python bindings.

use bytes::Bytes;
use tokio_tungstenite::tungstenite::Message as WsMessage;

/// A data message: text or binary.
///
/// ```
/// use switchyard_client::Message;
/// let hello = Message::text("hello");
/// assert_eq!(hello.len(), 5);
/// let frame = Message::binary(vec![1u8, 2, 3]);
/// assert!(matches!(frame, Message::Binary(_)));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Message {
    Text(String),
    Binary(Bytes),
}

impl Message {
    /// A text message.
    pub fn text(text: impl Into<String>) -> Message {
        Message::Text(text.into())
    }

    /// A binary message.
    pub fn binary(data: impl Into<Bytes>) -> Message {
        Message::Binary(data.into())
    }

    /// The payload's size in bytes.
    pub fn len(&self) -> usize {
        match self {
            Message::Text(t) => t.len(),
            Message::Binary(b) => b.len(),
        }
    }

    /// Whether the payload is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The text, if this is a text message.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Message::Text(t) => Some(t),
            Message::Binary(_) => None,
        }
    }

    pub(crate) fn into_ws(self) -> WsMessage {
        match self {
            Message::Text(t) => WsMessage::text(t),
            Message::Binary(b) => WsMessage::binary(b),
        }
    }

    /// A data frame as a message; `None` for control frames.
    pub(crate) fn from_ws(msg: WsMessage) -> Option<Message> {
        match msg {
            WsMessage::Text(t) => Some(Message::Text(t.as_str().to_string())),
            WsMessage::Binary(b) => Some(Message::Binary(b)),
            _ => None,
        }
    }
}

impl From<String> for Message {
    fn from(text: String) -> Message {
        Message::Text(text)
    }
}

impl From<&str> for Message {
    fn from(text: &str) -> Message {
        Message::Text(text.to_string())
    }
}

impl From<Bytes> for Message {
    fn from(data: Bytes) -> Message {
        Message::Binary(data)
    }
}

impl From<Vec<u8>> for Message {
    fn from(data: Vec<u8>) -> Message {
        Message::Binary(data.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_go_to_the_wire_and_back_unchanged() {
        for msg in [
            Message::text("héllo"),
            Message::text(""),
            Message::binary(vec![0u8, 255, 7]),
        ] {
            assert_eq!(Message::from_ws(msg.clone().into_ws()), Some(msg));
        }
        assert_eq!(Message::from_ws(WsMessage::Ping(Bytes::new())), None);
    }
}
