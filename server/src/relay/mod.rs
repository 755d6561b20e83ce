//! WebSocket sessions' data plane: frames pass through the router as the bytes they are.
//!
//! Each direction ([`flow::Flow`]) reads into the worker's scratch buffer when its socket is
//! readable, walks the frame headers in what it read ([`frame`]) and writes the same bytes
//! on: payloads are neither unmasked nor copied, fragments pass as they come (not
//! reassembled), and an idle session holds no buffer at all — only bytes a slow receiver has
//! not taken yet are kept, like HAProxy's buffers that exist only while data is in flight.
//! Headers are enough for everything the router does with frames: count whole messages (the
//! `delivered` of a move), enforce the message size limit before a byte of an oversized frame
//! passes, refuse protocol errors, and place its own close frames between frames.
//!
//! [`session::Session`] runs both flows and the session's closes and moves; the
//! `SessionActor` (`control/session.rs`) owns it on the worker that accepted the client.

pub mod flow;
pub mod frame;
pub mod session;

pub use session::{End, Session, SessionTimers};
