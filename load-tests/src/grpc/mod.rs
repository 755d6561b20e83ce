//! The test backend's gRPC side: the `switchyard.test.Echo` service (unary and
//! server-streaming calls, failures on request, the answering backend named in every reply)
//! and the standard health service (`grpc.health.v1`, from `tonic-health`), served over
//! HTTP/2 cleartext by `tonic`. What the router's HTTP/2 backend support is tested against:
//! a real gRPC server, not a script.

#[allow(clippy::all, missing_debug_implementations)]
pub mod echo;

use std::net::SocketAddr;
use std::pin::Pin;
use std::time::Duration;

use futures_util::Stream;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tonic::metadata::MetadataValue;
use tonic::{Code, Request, Response, Status};
use tonic_health::server::HealthReporter;

pub use echo::echo_client::EchoClient;
use echo::echo_server::{Echo, EchoServer};
pub use echo::{EchoReply, EchoRequest, StreamRequest};
/// The gRPC library the backend is built with, for clients in tests.
pub use tonic;

/// The name [`GrpcBackend::set_serving`] reports on: the Echo service's full name.
pub const ECHO_SERVICE: &str = "switchyard.test.Echo";

/// A running gRPC backend; stops when dropped.
pub struct GrpcBackend {
    pub addr: SocketAddr,
    pub name: String,
    health: HealthReporter,
    stop: Option<oneshot::Sender<()>>,
}

impl std::fmt::Debug for GrpcBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GrpcBackend")
            .field("addr", &self.addr)
            .field("name", &self.name)
            .finish()
    }
}

impl GrpcBackend {
    /// Serves on `addr` (port 0: a free one) until dropped. Both the server as a whole (`""`)
    /// and [`ECHO_SERVICE`] report `SERVING` at first.
    pub async fn start(name: &str, addr: SocketAddr) -> std::io::Result<GrpcBackend> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let (health, health_service) = tonic_health::server::health_reporter();
        health
            .set_service_status("", tonic_health::ServingStatus::Serving)
            .await;
        health
            .set_service_status(ECHO_SERVICE, tonic_health::ServingStatus::Serving)
            .await;
        let (stop, stopped) = oneshot::channel::<()>();
        let echo = EchoServer::new(EchoService {
            name: name.to_string(),
        });
        tokio::spawn(async move {
            let served = tonic::transport::Server::builder()
                .add_service(health_service)
                .add_service(echo)
                .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async {
                    let _ = stopped.await;
                })
                .await;
            if let Err(err) = served {
                eprintln!("gRPC backend stopped: {err}");
            }
        });
        Ok(GrpcBackend {
            addr,
            name: name.to_string(),
            health,
            stop: Some(stop),
        })
    }

    /// What the health service answers for `service` (`""`: the server as a whole).
    pub async fn set_serving(&self, service: &str, serving: bool) {
        let status = match serving {
            true => tonic_health::ServingStatus::Serving,
            false => tonic_health::ServingStatus::NotServing,
        };
        self.health.set_service_status(service, status).await;
    }
}

impl Drop for GrpcBackend {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

struct EchoService {
    name: String,
}

impl EchoService {
    /// A failure with the code asked for, the request's message and the backend's name in
    /// its metadata (so a client can tell the trailers came through).
    fn failure(&self, code: u32, message: &str) -> Status {
        let mut status = Status::new(
            Code::from(code as i32),
            format!("failed as asked: {message}"),
        );
        if let Ok(name) = MetadataValue::try_from(self.name.as_str()) {
            status.metadata_mut().insert("x-backend", name);
        }
        status
    }
}

type Replies = Pin<Box<dyn Stream<Item = Result<EchoReply, Status>> + Send>>;

#[tonic::async_trait]
impl Echo for EchoService {
    async fn unary(&self, request: Request<EchoRequest>) -> Result<Response<EchoReply>, Status> {
        let request = request.into_inner();
        if request.fail_code > 0 {
            return Err(self.failure(request.fail_code, &request.message));
        }
        let mut response = Response::new(EchoReply {
            message: request.message,
            index: 0,
            backend: self.name.clone(),
        });
        if let Ok(name) = MetadataValue::try_from(self.name.as_str()) {
            response.metadata_mut().insert("x-backend", name);
        }
        Ok(response)
    }

    type ServerStreamStream = Replies;

    async fn server_stream(
        &self,
        request: Request<StreamRequest>,
    ) -> Result<Response<Replies>, Status> {
        let request = request.into_inner();
        let (tx, rx) = mpsc::channel(4);
        let failure =
            (request.fail_code > 0).then(|| self.failure(request.fail_code, &request.message));
        let backend = self.name.clone();
        tokio::spawn(async move {
            for index in 0..request.count {
                if index > 0 && request.interval_ms > 0 {
                    tokio::time::sleep(Duration::from_millis(u64::from(request.interval_ms))).await;
                }
                let reply = EchoReply {
                    message: request.message.clone(),
                    index,
                    backend: backend.clone(),
                };
                if tx.send(Ok(reply)).await.is_err() {
                    return;
                }
            }
            if let Some(failure) = failure {
                let _ = tx.send(Err(failure)).await;
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}
