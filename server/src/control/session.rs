//! `SessionActor`: one per live WebSocket session. Owns the session's two ends and pumps
//! frames between them (on the worker thread that accepted the client, so no frame crosses
//! threads), and obeys [`CloseSession`] — how drains and shutdowns will move sessions.
//!
//! Close codes the router sends itself (the SDK knows them): `4001` backend draining, `4002`
//! backend lost abnormally, `1009` message too big, `1001` the router is going away. Every
//! other close code is the backend's (or the client's) and passes through unchanged.

use actix::Message;
use actix::prelude::*;
use actix_ws::{AggregatedMessage, AggregatedMessageStream, CloseCode, CloseReason, Session};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode as WsCode;

use crate::routing::stats::SessionGuard;

/// Close code: the backend is draining; reconnect now with the same session id.
pub const CLOSE_DRAINING: u16 = 4001;
/// Close code: the backend was lost abnormally; reconnect after a short jittered delay.
pub const CLOSE_BACKEND_LOST: u16 = 4002;

/// Ends a session with a close code (to the client) and a reason.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct CloseSession {
    pub code: u16,
    pub reason: String,
}

pub struct SessionActor {
    pump: Option<Pump>,
    commands: mpsc::Sender<CloseSession>,
}

struct Pump {
    client: Session,
    from_client: AggregatedMessageStream,
    backend: WebSocketStream<TcpStream>,
    commands: mpsc::Receiver<CloseSession>,
    _guard: SessionGuard,
}

impl SessionActor {
    pub fn new(
        client: Session,
        from_client: AggregatedMessageStream,
        backend: WebSocketStream<TcpStream>,
        guard: SessionGuard,
    ) -> SessionActor {
        let (commands, rx) = mpsc::channel(4);
        SessionActor {
            pump: Some(Pump {
                client,
                from_client,
                backend,
                commands: rx,
                _guard: guard,
            }),
            commands,
        }
    }
}

impl Actor for SessionActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        if let Some(pump) = self.pump.take() {
            ctx.spawn(
                pump.run()
                    .into_actor(self)
                    .map(|_, _, ctx: &mut Context<Self>| ctx.stop()),
            );
        }
    }
}

impl Handler<CloseSession> for SessionActor {
    type Result = ();

    fn handle(&mut self, msg: CloseSession, _: &mut Context<Self>) {
        let _ = self.commands.try_send(msg);
    }
}

fn client_reason(code: u16, reason: &str) -> Option<CloseReason> {
    Some(CloseReason {
        code: CloseCode::from(code),
        description: (!reason.is_empty()).then(|| reason.to_string()),
    })
}

fn backend_frame(code: u16, reason: &str) -> WsMessage {
    WsMessage::Close(Some(CloseFrame {
        code: WsCode::from(code),
        reason: reason.to_string().into(),
    }))
}

impl Pump {
    async fn run(mut self) {
        let (mut to_backend, mut from_backend) = self.backend.split();
        loop {
            tokio::select! {
                msg = self.from_client.next() => {
                    let forward = match msg {
                        Some(Ok(AggregatedMessage::Text(text))) => WsMessage::text(text.to_string()),
                        Some(Ok(AggregatedMessage::Binary(data))) => WsMessage::binary(data),
                        Some(Ok(AggregatedMessage::Ping(data))) => WsMessage::Ping(data),
                        Some(Ok(AggregatedMessage::Pong(data))) => WsMessage::Pong(data),
                        Some(Ok(AggregatedMessage::Close(reason))) => {
                            let (code, text) = reason.map_or((1000, String::new()), |r| {
                                (u16::from(r.code), r.description.unwrap_or_default())
                            });
                            let _ = to_backend.send(backend_frame(code, &text)).await;
                            let _ = self.client.close(client_reason(code, &text)).await;
                            return;
                        }
                        Some(Err(err)) => {
                            // Too big or malformed: tell both sides, as RFC 6455 asks.
                            let code = match err {
                                actix_ws::ProtocolError::Overflow => 1009,
                                _ => 1002,
                            };
                            let _ = to_backend.send(backend_frame(1001, "client failed")).await;
                            let _ = self.client.close(client_reason(code, &err.to_string())).await;
                            return;
                        }
                        None => {
                            let _ = to_backend.send(backend_frame(1001, "client went away")).await;
                            return;
                        }
                    };
                    if to_backend.send(forward).await.is_err() {
                        let _ = self.client.close(client_reason(CLOSE_BACKEND_LOST, "backend lost")).await;
                        return;
                    }
                }
                msg = from_backend.next() => {
                    let sent = match msg {
                        Some(Ok(WsMessage::Text(text))) => self.client.text(text.as_str().to_owned()).await,
                        Some(Ok(WsMessage::Binary(data))) => self.client.binary(data).await,
                        Some(Ok(WsMessage::Ping(data))) => self.client.ping(&data).await,
                        Some(Ok(WsMessage::Pong(data))) => self.client.pong(&data).await,
                        Some(Ok(WsMessage::Close(frame))) => {
                            let (code, text) = frame.map_or((1000, String::new()), |f| {
                                (u16::from(f.code), f.reason.to_string())
                            });
                            let _ = self.client.close(client_reason(code, &text)).await;
                            return;
                        }
                        Some(Ok(WsMessage::Frame(_))) => Ok(()),
                        Some(Err(_)) | None => {
                            let _ = self.client.close(client_reason(CLOSE_BACKEND_LOST, "backend lost")).await;
                            return;
                        }
                    };
                    if sent.is_err() {
                        // The client is gone.
                        let _ = to_backend.send(backend_frame(1001, "client went away")).await;
                        return;
                    }
                }
                Some(command) = self.commands.recv() => {
                    let _ = to_backend.send(backend_frame(1001, &command.reason)).await;
                    let _ = self.client.close(client_reason(command.code, &command.reason)).await;
                    return;
                }
            }
        }
    }
}
