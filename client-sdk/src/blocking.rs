//! A blocking facade over the async client, for apps without an async runtime and for the C
//! and Python bindings. It owns a small tokio runtime (two worker threads) on which requests
//! and sessions run; each call blocks the calling thread until its answer. It never panics on
//! misuse: called from inside an async runtime (where blocking would stall it), a call
//! returns [`ErrorKind::Invalid`] — use [`crate::Client`] there.
//!
//! ```no_run
//! use std::time::Duration;
//! use switchyard_client::{Client, Event, Message, blocking};
//!
//! let client = blocking::Client::new(Client::builder().region("local", "http://127.0.0.1:8080"))?;
//! let titles = client.get("/api/titles")?;
//! let mut session = client.session("/ws/echo")?;
//! session.send(Message::text("hello"))?;
//! while let Some(event) = session.next_timeout(Duration::from_secs(5))? {
//!     if let Event::Message(reply) = event {
//!         println!("{reply:?}");
//!         break;
//!     }
//! }
//! session.close()?;
//! # Ok::<(), switchyard_client::Error>(())
//! ```

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::client::{ClientBuilder, Request, Response, StatsSnapshot};
use crate::error::{Error, ErrorKind};
use crate::message::Message;
use crate::session::Event;

/// Worker threads of the facade's runtime: requests and sessions are I/O-bound.
const WORKER_THREADS: usize = 2;

/// The runtime, shut down without blocking when the last user goes (so dropping a facade
/// object anywhere, even inside another runtime, cannot panic).
struct Runtime(Option<tokio::runtime::Runtime>);

impl Drop for Runtime {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

impl Runtime {
    fn block<F: Future>(&self, work: F) -> Result<F::Output, Error> {
        if tokio::runtime::Handle::try_current().is_ok() {
            return Err(Error::new(
                ErrorKind::Invalid(
                    "the blocking client was called from async code; use switchyard_client::Client there"
                        .into(),
                ),
                None,
                0,
                false,
            ));
        }
        match &self.0 {
            Some(rt) => Ok(rt.block_on(work)),
            None => Err(Error::new(
                ErrorKind::Invalid("the client's runtime is shut down".into()),
                None,
                0,
                false,
            )),
        }
    }
}

/// A blocking [`crate::Client`]. Cheap to clone; share one per app.
#[derive(Clone)]
pub struct Client {
    inner: crate::Client,
    runtime: Arc<Runtime>,
}

impl Client {
    /// Builds the client and starts its runtime.
    pub fn new(builder: ClientBuilder) -> Result<Client, Error> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(WORKER_THREADS)
            .thread_name("switchyard-client")
            .enable_all()
            .build()
            .map_err(|err| {
                Error::new(
                    ErrorKind::Invalid(format!("cannot start the client's runtime: {err}")),
                    None,
                    0,
                    false,
                )
            })?;
        let inner = {
            let _inside = runtime.enter();
            builder.build()?
        };
        Ok(Client {
            inner,
            runtime: Arc::new(Runtime(Some(runtime))),
        })
    }

    /// The async client underneath (for code that has a runtime of its own).
    pub fn as_async(&self) -> &crate::Client {
        &self.inner
    }

    /// [`crate::Client::request`], blocking.
    pub fn request(&self, req: Request) -> Result<Response, Error> {
        self.runtime.block(self.inner.request(req))?
    }

    /// [`crate::Client::request`], blocking, given up after `deadline` for the whole call
    /// (retries included) — when it is shorter than the client's own `deadline`:
    /// [`ErrorKind::Deadline`] then.
    pub fn request_within(&self, req: Request, deadline: Duration) -> Result<Response, Error> {
        self.runtime
            .block(async { tokio::time::timeout(deadline, self.inner.request(req)).await })?
            .map_err(|_| Error::new(ErrorKind::Deadline(deadline), None, 0, true))?
    }

    /// [`crate::Client::get`], blocking.
    pub fn get(&self, path: &str) -> Result<Response, Error> {
        self.runtime.block(self.inner.get(path))?
    }

    /// [`crate::Client::post`], blocking.
    pub fn post(&self, path: &str, body: impl Into<Bytes>) -> Result<Response, Error> {
        self.runtime.block(self.inner.post(path, body))?
    }

    /// [`crate::Client::session`], blocking until connected (within the client's deadline).
    pub fn session(&self, path: &str) -> Result<Session, Error> {
        let inner = self.runtime.block(self.inner.session(path))??;
        Ok(Session {
            inner,
            runtime: self.runtime.clone(),
        })
    }

    pub fn stats(&self) -> StatsSnapshot {
        self.inner.stats()
    }

    pub fn session_id(&self) -> Option<String> {
        self.inner.session_id()
    }
}

/// A blocking [`crate::Session`]; it keeps the client's runtime alive. Dropping it closes
/// the session.
pub struct Session {
    inner: crate::Session,
    runtime: Arc<Runtime>,
}

impl Session {
    /// [`crate::Session::send`]: queues, never blocks.
    pub fn send(&self, msg: impl Into<Message>) -> Result<(), Error> {
        self.inner.send(msg)
    }

    /// The next event, waiting as long as it takes; `Ok(None)` once the session is over and
    /// every event was read. (Not an `Iterator`: it can fail, and the bindings want the
    /// error.)
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Result<Option<Event>, Error> {
        self.runtime.block(self.inner.next())
    }

    /// The next event within `wait`; [`ErrorKind::Timeout`] if none came.
    pub fn next_timeout(&mut self, wait: Duration) -> Result<Option<Event>, Error> {
        self.runtime
            // Made inside the runtime: a timer needs one.
            .block(async { tokio::time::timeout(wait, self.inner.next()).await })?
            .map_err(|_| Error::new(ErrorKind::Timeout(wait), None, 0, true))
    }

    /// [`crate::Session::close`], blocking (at most about twice `send_timeout`).
    pub fn close(self) -> Result<(), Error> {
        let Session { inner, runtime } = self;
        runtime.block(inner.close())?
    }
}
