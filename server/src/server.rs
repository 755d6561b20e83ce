//! Starting and stopping a router: the actor tree, the public listeners and the admin
//! listener, all in one actix `System` on a thread of their own.
//!
//! [`start`] returns once every listener is bound (so a caller can print or test addresses
//! right away) with a [`RouterHandle`]; [`RouterHandle::stop`] stops gracefully: readiness
//! fails first, listeners close, in-flight requests finish within `shutdown_timeout`.

use crate::h2_frames::FrameWatch;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use std::convert::Infallible;

use actix::Actor;
use actix_codec::Framed;
use actix_http::{HttpService, Request, h1};
use actix_service::{IntoServiceFactory, ServiceFactoryExt, fn_service, map_config};
use actix_web::dev::AppConfig;
use actix_web::rt::net::TcpStream;
use actix_web::{App, HttpServer, web};
use arc_swap::ArcSwap;
use tokio::sync::oneshot;

use crate::admin;
use crate::config::Config;
use crate::conn::{self, ClientIo, HasConn};
use crate::control::RouterSupervisor;
use crate::control::reload::{self, ReloadError};
use crate::control::supervisor::ReloadReport;
use crate::lifecycle::Readiness;
use crate::proxy::{self, ProxyState};
use crate::routing::handoff::{self, Pace};
use crate::routing::{MoveTo, RouteTable};
use crate::session::{MemoryStore, Sessions, SharedStore, Store, TokenKey};
use crate::startup::StartupError;
use crate::telemetry;
use crate::tls::SniResolver;

/// Pending-connection queue of each listener.
pub const LISTEN_BACKLOG: u32 = 2048;

/// A running router.
pub struct RouterHandle {
    listen: Vec<SocketAddr>,
    admin: SocketAddr,
    supervisor: actix::Addr<RouterSupervisor>,
    tls: Vec<Arc<SniResolver>>,
    table: Arc<ArcSwap<RouteTable>>,
    stop: Option<oneshot::Sender<Duration>>,
    thread: Option<JoinHandle<()>>,
}

impl RouterHandle {
    /// Public listener addresses, `node.listen` first (actual ports when 0 was asked).
    pub fn listen_addrs(&self) -> &[SocketAddr] {
        &self.listen
    }

    pub fn addr(&self) -> SocketAddr {
        self.listen[0]
    }

    pub fn admin_addr(&self) -> SocketAddr {
        self.admin
    }

    /// The live route table (for inspection; actors own changes).
    pub fn table(&self) -> Arc<RouteTable> {
        self.table.load_full()
    }

    /// Applies a new (validated) configuration without dropping connections or sessions:
    /// routes, pools and backends change; removed backends and pools are drained first.
    /// What only a restart changes is named in the report.
    pub fn reload(&self, config: Config) -> Result<ReloadReport, ReloadError> {
        let runtime = tokio::runtime::Builder::new_current_thread().build()?;
        runtime.block_on(self.reload_async(config))
    }

    /// [`RouterHandle::reload`] for callers already on an async runtime. TLS listeners load
    /// their certificate files again too (a set that does not load keeps the old one).
    pub async fn reload_async(&self, config: Config) -> Result<ReloadReport, ReloadError> {
        reload::apply(&self.supervisor, &self.tls, config)
            .await
            .map(|reloaded| reloaded.report)
    }

    /// Reads `file` again and applies it (what SIGHUP does); an invalid file changes nothing
    /// and is logged with every issue. Blocks while it reads the file.
    pub async fn reload_file(&self, file: &std::path::Path) -> Result<ReloadReport, ReloadError> {
        let config = reload::load(file)?;
        self.reload_async(config).await
    }

    /// Stops gracefully and waits until everything has shut down.
    pub fn stop(mut self) {
        self.shutdown(Duration::ZERO);
    }

    /// Stops as on SIGTERM: `/readyz` fails for `delay` while the listeners still accept
    /// (so load balancers in front notice), then they stop accepting, live sessions are
    /// closed with `4001`, and it waits for sessions and in-flight requests to end, at most
    /// `node.shutdown_timeout`.
    pub fn stop_after(mut self, delay: Duration) {
        self.shutdown(delay);
    }

    fn shutdown(&mut self, delay: Duration) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(delay);
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for RouterHandle {
    fn drop(&mut self) {
        self.shutdown(Duration::ZERO);
    }
}

/// The session-token key from the configured file or environment variable, or a random one
/// (tokens then last only as long as this process, and other nodes cannot check them).
fn token_key(config: &Config) -> Result<TokenKey, StartupError> {
    // Trimmed, as a key read from a file is: a node given the key by file and another by
    // environment (with a trailing newline) sign alike.
    let from_env = std::env::var(&config.sessions.cookie_key_env)
        .ok()
        .map(|k| k.trim().to_string())
        .filter(|k| !k.is_empty())
        .map(String::into_bytes);
    let key = match config.sessions.cookie_key.clone().or(from_env) {
        Some(key) => TokenKey::new(&key),
        _ => {
            tracing::warn!(
                env = %config.sessions.cookie_key_env,
                "no session key set: using a random one; session tokens will not survive a restart"
            );
            TokenKey::random().map_err(|err| StartupError::TokenKey {
                reason: err.to_string(),
            })?
        }
    };
    Ok(
        match config
            .sessions
            .previous_key_env
            .as_ref()
            .and_then(|env| std::env::var(env).ok())
            .map(|k| k.trim().to_string())
            .filter(|k| !k.is_empty())
        {
            Some(previous) => key.with_previous(
                previous.as_bytes(),
                std::time::Instant::now() + config.sessions.previous_key_window,
            ),
            None => key,
        },
    )
}

/// Waits until every backend's first health check has decided (each check has its own hard
/// timeout), so a router serves with known states instead of guessing; bounded by the longest
/// check timeout.
async fn first_checks(config: &Config, table: &ArcSwap<RouteTable>) {
    let longest = config
        .pools
        .iter()
        .map(|p| p.health.timeout)
        .max()
        .unwrap_or_default();
    let deadline = std::time::Instant::now() + longest + FIRST_CHECK_MARGIN;
    let table = table.load_full();
    let undecided = || {
        table.pools.iter().any(|p| {
            p.load()
                .backends
                .iter()
                .any(|b| b.state == crate::routing::BackendState::Unknown)
        })
    };
    while undecided() && std::time::Instant::now() < deadline {
        actix_rt::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

/// The public listeners: actix-http's HTTP/1.1 service with the proxy handler for requests and
/// an upgrade hook that gives WebSocket upgrades their connection ([`proxy::websocket`]), so
/// sessions are framed with the router's own small buffers instead of actix-web's 16 KiB per
/// connection. Built on actix-server directly because `HttpServer` has no upgrade hook.
/// The running public listeners: the server, their addresses, the TLS listeners' certificates.
type Public = (actix_server::Server, Vec<SocketAddr>, Vec<Arc<SniResolver>>);

/// `draining` turns true when a graceful stop begins (after `shutdown_delay`): client
/// connections are then wound down — HTTP/1.1 keep-alive ends after the answer in progress,
/// HTTP/2 connections get the two-phase GOAWAY — so clients move while the node drains.
fn public_server(
    config: &Config,
    state: web::Data<ProxyState>,
    draining: tokio::sync::watch::Receiver<bool>,
) -> Result<Public, StartupError> {
    let per_worker = config
        .node
        .max_connections
        .div_ceil(config.node.workers.max(1));
    let mut builder = actix_server::Server::build()
        .workers(config.node.workers)
        .max_concurrent_connections(per_worker)
        .backlog(LISTEN_BACKLOG)
        .shutdown_timeout(config.node.shutdown_timeout.as_secs().max(1))
        .disable_signals();
    let shutdown = builder.graceful_shutdown_signal();
    let mut listen = Vec::new();
    let mut resolvers = Vec::new();
    let limits = config.limits;
    let per_address = conn::PerAddress::new(
        config.limits.max_connections_per_ip,
        Arc::new(config.node.trusted_proxies.clone()),
    );
    // Plain listeners that redirect send clients to the first TLS listener's port.
    let https_port = config
        .listeners
        .iter()
        .find(|l| l.tls.is_some())
        .map_or(443, |l| l.address.port());
    let specs = std::iter::once((config.node.listen, None, false, false, Vec::new(), None)).chain(
        config.listeners.iter().map(|l| {
            (
                l.address,
                l.tls.clone(),
                l.redirect_https,
                l.proxy_protocol,
                l.proxy_protocol_from.clone(),
                l.max_connections,
            )
        }),
    );
    for (addr, tls, redirect, proxy_protocol, proxy_from, max_connections) in specs {
        let bind_error = |source| StartupError::Bind {
            listener: "public",
            addr,
            source,
        };
        let listener = bind_listener(addr).map_err(bind_error)?;
        let local = listener.local_addr().map_err(bind_error)?;
        listen.push(local);
        let shutdown = shutdown.clone();
        let draining = draining.clone();
        let name = format!("switchyard-{local}");
        // Each listener's own view: its scheme, and whether it only redirects.
        let state = web::Data::new(ProxyState {
            proto: if tls.is_some() { "https" } else { "http" },
            redirect_https: redirect.then_some(https_port),
            ..ProxyState::clone(&state)
        });
        /// The HTTP/1.1 + HTTP/2 service of a listener over connections of type `$io`.
        macro_rules! service {
            ($io:ty) => {{
                let upgrade_state = state.clone();
                let expect_state = state.clone();
                let shutdown = shutdown.clone();
                let draining = draining.clone();
                let app = App::new()
                    .app_data(state.clone())
                    .default_service(web::to(proxy::handle))
                    .into_factory()
                    .map_err(|err: actix_web::Error| err.error_response());
                let http = HttpService::build()
                    .on_connect_ext(|io: &$io, ext: &mut actix_http::Extensions| {
                        ext.insert(io.conn().clone());
                    })
                    .keep_alive(limits.idle_timeout)
                    .client_request_timeout(limits.header_timeout)
                    // HTTP/2 settings the client sees (and the h2 layer enforces): streams
                    // over the limit are refused with REFUSED_STREAM, retryable by clients.
                    .h2_max_concurrent_streams(limits.max_streams_per_connection)
                    .h2_initial_window_size(limits.h2_initial_stream_window)
                    .h2_initial_connection_window_size(limits.h2_initial_connection_window)
                    .h2_max_frame_size(limits.h2_max_frame_size)
                    // A stream whose client keeps its window shut is reset after the same
                    // time a blocked HTTP/1.1 write gets (`write_timeout`).
                    .h2_send_timeout_counted(limits.write_timeout, conn::count_h2_send_timeout)
                    .h2_max_header_list_size(
                        u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX),
                    )
                    .tcp_nodelay(true)
                    .local_addr(local)
                    .graceful_shutdown_signal(move || {
                        let (shutdown, mut draining) = (shutdown.clone(), draining.clone());
                        async move {
                            tokio::select! {
                                _ = shutdown.notified() => {}
                                drained = draining.wait_for(|on| *on) => {
                                    if drained.is_err() {
                                        // The control plane is gone: only the server's own
                                        // stop can still come.
                                        std::future::pending::<()>().await;
                                    }
                                }
                            }
                        }
                    })
                    .expect(fn_service(move |req: Request| {
                        let refused = proxy::http::refuse_expectation(req.head(), &expect_state);
                        async move {
                            match refused {
                                Some(answer) => Err(answer),
                                None => Ok(req),
                            }
                        }
                    }))
                    .upgrade(fn_service(
                        move |(req, framed): (Request, Framed<$io, h1::Codec>)| {
                            let state = upgrade_state.clone();
                            async move {
                                proxy::websocket::upgrade(req, framed, &state).await;
                                Ok::<_, Infallible>(())
                            }
                        },
                    ))
                    .finish(map_config(app, |_| AppConfig::default()));
                // What the HTTP layer refused on its own (malformed heads, 431s, heads never
                // finished) is counted when the connection's service ends.
                actix_service::apply_fn_factory(
                    http,
                    |(io, proto, peer): ($io, actix_http::Protocol, Option<SocketAddr>),
                     http: &_| {
                        let conn = io.conn().clone();
                        let served = actix_service::Service::call(http, (io, proto, peer));
                        async move {
                            let outcome = served.await;
                            conn::count_end(&conn, &outcome);
                            outcome
                        }
                    },
                )
            }};
        }
        // Every connection is admitted first (PROXY header, per-address count), then TLS
        // where the listener has it, then HTTP; the connection's facts ride in `ClientIo`.
        let per_address = per_address.clone();
        let admission = Arc::new(conn::Listener {
            proxy_protocol,
            proxy_from,
            tls: tls.is_some(),
            // Shared by the listener's workers: the limit is the listener's.
            places: max_connections.map(|max| Arc::new(tokio::sync::Semaphore::new(max as usize))),
            wait: limits.header_timeout,
            write_timeout: limits.write_timeout,
        });
        let admit = move || {
            let (per_address, admission) = (per_address.clone(), admission.clone());
            fn_service(move |io: TcpStream| {
                let (per_address, admission) = (per_address.clone(), admission.clone());
                async move {
                    conn::admit(io, &admission, per_address)
                        .await
                        .map_err(actix_http::error::DispatchError::Io)
                }
            })
        };
        builder = match tls {
            None => builder.listen(name, listener, move || {
                admit()
                    .and_then(fn_service(move |io: ClientIo<TcpStream>| async move {
                        let (io, protocol, peer) = conn::sniff_h2c(io, limits.header_timeout).await;
                        Ok((FrameWatch::new(io, protocol), protocol, peer))
                    }))
                    .and_then(service!(FrameWatch<ClientIo<TcpStream>>))
            }),
            Some(tls) => {
                let resolver =
                    Arc::new(SniResolver::new(tls).map_err(|reason| StartupError::Tls {
                        addr,
                        reason: Box::new(reason),
                    })?);
                resolvers.push(resolver.clone());
                let tls_config =
                    crate::tls::server_config(resolver).map_err(|reason| StartupError::Tls {
                        addr,
                        reason: Box::new(reason),
                    })?;
                let tls_config = Arc::new(tls_config);
                builder.listen(name, listener, move || {
                    let tls_config = tls_config.clone();
                    // Per worker: this closure builds each worker's service.
                    let permits =
                        Arc::new(tokio::sync::Semaphore::new(conn::HANDSHAKES_PER_WORKER));
                    admit()
                        .and_then(fn_service(move |io: ClientIo<TcpStream>| {
                            let handshake = conn::handshake(
                                io,
                                tls_config.clone(),
                                permits.clone(),
                                TLS_HANDSHAKE_TIMEOUT,
                            );
                            async move {
                                let (tls, protocol, peer) = handshake.await?;
                                Ok((FrameWatch::new(tls, protocol), protocol, peer))
                            }
                        }))
                        .and_then(service!(FrameWatch<conn::TlsIo>))
                })
            }
        }
        .map_err(bind_error)?;
    }
    Ok((builder.run(), listen, resolvers))
}

/// Reloads a TLS listener's certificates when their files change; a set that does not load
/// keeps the old one and says why.
async fn watch_certificates(resolvers: Vec<Arc<SniResolver>>) {
    loop {
        actix_rt::time::sleep(crate::tls::WATCH_EVERY).await;
        for resolver in &resolvers {
            match resolver.reload_if_changed() {
                Some(Ok(())) => {
                    tracing::info!(files = ?resolver.files(), "TLS certificates changed on disk: reloaded")
                }
                Some(Err(reason)) => {
                    tracing::error!(%reason, "TLS certificates changed on disk but do not load: keeping the old ones")
                }
                None => {}
            }
        }
    }
}

/// Time a client has to finish its TLS handshake.
pub const TLS_HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// A listening socket with the router's backlog.
fn bind_listener(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(LISTEN_BACKLOG as i32)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

/// Slack over the longest check timeout for the first checks' verdicts to be published.
const FIRST_CHECK_MARGIN: std::time::Duration = std::time::Duration::from_millis(200);

struct Bound {
    listen: Vec<SocketAddr>,
    admin: SocketAddr,
    supervisor: actix::Addr<RouterSupervisor>,
    tls: Vec<Arc<SniResolver>>,
}

/// Starts a router for `config`; returns once it is serving.
pub fn start(config: Config) -> Result<RouterHandle, StartupError> {
    telemetry::install_metrics();
    let table = Arc::new(ArcSwap::from_pointee(RouteTable::build(&config)));
    let (bound_tx, bound_rx) = std::sync::mpsc::channel::<Result<Bound, StartupError>>();
    let (stop_tx, stop_rx) = oneshot::channel::<Duration>();
    let thread_table = table.clone();
    let thread = std::thread::Builder::new()
        .name("switchyard-control".to_string())
        .spawn(move || {
            let system = actix_rt::System::new();
            system.block_on(run(config, thread_table, bound_tx, stop_rx));
        })
        .map_err(StartupError::Thread)?;
    let bound = match bound_rx.recv() {
        Ok(Ok(bound)) => bound,
        Ok(Err(err)) => {
            let _ = thread.join();
            return Err(err);
        }
        Err(_) => {
            let _ = thread.join();
            return Err(StartupError::ThreadEnded);
        }
    };
    Ok(RouterHandle {
        listen: bound.listen,
        admin: bound.admin,
        supervisor: bound.supervisor,
        tls: bound.tls,
        table,
        stop: Some(stop_tx),
        thread: Some(thread),
    })
}

async fn run(
    config: Config,
    table: Arc<ArcSwap<RouteTable>>,
    bound_tx: std::sync::mpsc::Sender<Result<Bound, StartupError>>,
    stop_rx: oneshot::Receiver<Duration>,
) {
    let ready = Arc::new(Readiness::default());
    let local = MemoryStore::new(config.sessions.ttl, config.node.region.as_str().into())
        .with_max_records(config.sessions.max_records);
    let store = match &config.sessions.redis {
        None => Store::Memory(local),
        Some(redis) => match SharedStore::new(redis, local) {
            Ok(shared) => {
                let shared = Arc::new(shared);
                actix_rt::spawn(shared.clone().maintain());
                Store::Shared(shared)
            }
            Err(reason) => {
                let _ = bound_tx.send(Err(StartupError::SessionStore { reason }));
                return;
            }
        },
    };
    let key = match token_key(&config) {
        Ok(key) => key,
        Err(err) => {
            let _ = bound_tx.send(Err(err));
            return;
        }
    };
    let sessions = Arc::new(Sessions::new(
        key,
        Arc::new(store),
        config.sessions.handoff_linger,
    ));
    let directory = Arc::new(crate::regions::Directory::new(&config));
    let supervisor = RouterSupervisor::new(
        config.clone(),
        table.clone(),
        sessions.store.clone(),
        directory.clone(),
    )
    .start();
    first_checks(&config, &table).await;
    // Admin changes travel between nodes through the same Redis as the sessions.
    let cluster = match (&*sessions.store, &config.sessions.redis) {
        (Store::Shared(shared), Some(redis)) => {
            let cluster = Arc::new(admin::cluster::Cluster::new(
                shared.clone(),
                &redis.key_prefix,
                table.clone(),
                supervisor.clone(),
            ));
            actix_rt::spawn(cluster.clone().run());
            Some(cluster)
        }
        _ => None,
    };
    let admin_token = config.node.admin_token.clone().or_else(|| {
        let token = std::env::var(&config.node.admin_token_env)
            .ok()
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty())?;
        if token.len() < crate::config::MIN_ADMIN_TOKEN_BYTES {
            // As short a token as a file may not hold: refused, and the API stays read-only.
            tracing::error!(
                env = %config.node.admin_token_env,
                bytes = token.len(),
                min = crate::config::MIN_ADMIN_TOKEN_BYTES,
                "the admin token from the environment is too short: ignored, the admin API is read-only"
            );
            return None;
        }
        Some(token)
    });
    if admin_token.is_none() {
        tracing::info!(
            env = %config.node.admin_token_env,
            "no admin token configured: the admin API is read-only"
        );
    }
    let state = web::Data::new(ProxyState {
        table: table.clone(),
        access_log: config.log.access,
        proto: "http",
        sessions: sessions.clone(),
        directory: directory.clone(),
        ready: ready.clone(),
        redirect_https: None,
        limits: config.limits,
        trusted_proxies: Arc::new(config.node.trusted_proxies.clone()),
    });
    let (draining, draining_rx) = tokio::sync::watch::channel(false);
    let (public, listen, tls) = match public_server(&config, state, draining_rx) {
        Ok(bound) => bound,
        Err(err) => {
            let _ = bound_tx.send(Err(err));
            return;
        }
    };
    if !tls.is_empty() {
        actix_rt::spawn(watch_certificates(tls.clone()));
    }
    let admin_state = web::Data::new(admin::state::AdminState {
        table: table.clone(),
        supervisor: supervisor.clone(),
        ready: ready.clone(),
        token: admin_token,
        region: config.node.region.clone(),
        started: std::time::Instant::now(),
        store: match config.sessions.redis {
            Some(_) => "redis",
            None => "memory",
        },
        cluster,
        config_path: config.source.clone(),
        directory: directory.clone(),
        tls: tls.clone(),
        adding: tokio::sync::Mutex::new(()),
    });

    let admin_server = HttpServer::new(move || {
        App::new().configure(|cfg| admin::configure(cfg, admin_state.clone()))
    })
    .workers(1)
    .shutdown_timeout(1)
    .disable_signals()
    .bind(config.node.admin_listen);
    let admin_server = match admin_server {
        Ok(server) => server,
        Err(source) => {
            let _ = bound_tx.send(Err(StartupError::Bind {
                listener: "admin",
                addr: config.node.admin_listen,
                source,
            }));
            return;
        }
    };
    let admin = admin_server.addrs()[0];

    let admin_server = admin_server.run();
    let public_handle = public.handle();
    let admin_handle = admin_server.handle();
    actix_rt::spawn(public);
    actix_rt::spawn(admin_server);
    ready.set(true);
    tracing::info!(listen = ?listen, admin = %admin, workers = config.node.workers, "switchyard serving");
    let _ = bound_tx.send(Ok(Bound {
        listen,
        admin,
        supervisor,
        tls,
    }));

    let delay = stop_rx.await.unwrap_or_default();
    tracing::info!(
        ?delay,
        "stopping: readiness off, then listeners closed, sessions moved, in-flight requests finished"
    );
    ready.set(false);
    actix_rt::time::sleep(delay).await;
    public_handle.pause().await;
    // Client connections wind down now (keep-alive ends, HTTP/2 gets GOAWAY), not only at
    // the end of the window.
    let _ = draining.send(true);
    let deadline = Instant::now() + config.node.shutdown_timeout;
    let sessions = handoff::every_session(&table.load().pools);
    if !sessions.is_empty() {
        // Paced, so the other nodes are not hit by every reconnect at once; at most half of
        // the stop's time, and early enough that the last move's handoff (the linger, then
        // the close) still ends within it.
        let spread = config
            .node
            .shutdown_spread
            .min(config.node.shutdown_timeout / 2)
            .min(
                config
                    .node
                    .shutdown_timeout
                    .saturating_sub(config.sessions.handoff_linger + Duration::from_secs(2)),
            );
        tracing::info!(
            sessions = sessions.len(),
            ?spread,
            "moving every live session (close 4001)"
        );
        actix_rt::spawn(handoff::move_sessions(
            sessions,
            Pace::spread(spread),
            MoveTo::Elsewhere,
            "shutdown",
            |_| true,
        ));
    }
    while Instant::now() < deadline && !idle(&table.load()) {
        actix_rt::time::sleep(Duration::from_millis(20)).await;
    }
    // Past the deadline with work left, stop at once: a graceful stop would wait up to
    // another `shutdown_timeout` for those connections, and the window operators size their
    // grace periods by (shutdown_delay + shutdown_timeout) would be exceeded.
    let graceful = idle(&table.load());
    if !graceful {
        tracing::warn!("shutdown_timeout reached with requests or sessions left: closing them");
    }
    public_handle.stop(graceful).await;
    admin_handle.stop(true).await;
    actix_rt::System::current().stop();
}

/// No session open and no request in flight.
fn idle(table: &RouteTable) -> bool {
    table.pools.iter().all(|pool| {
        pool.load()
            .backends
            .iter()
            .all(|b| b.stats.sessions() == 0 && b.stats.inflight() == 0)
    })
}
