//! Why a router did not start: each variant says what failed and where (which file, which
//! address, which part of the node), so `switchyard serve` can print it and exit with the
//! right code, and an embedding program or a test can tell a port taken from a bad file.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;

use crate::config::ConfigError;

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// The config file does not load: every issue, with its key path, one per line.
    #[error("{}: invalid configuration\n{}", file.display(), indented(source))]
    Config {
        file: PathBuf,
        #[source]
        source: ConfigError,
    },
    /// Logging could not be set up: the reason names the key (`log.access_path: cannot open ...`).
    #[error("{reason}")]
    Logging {
        #[source]
        reason: crate::logging::LogError,
    },
    /// A listener's address is taken or not this host's. `listener`: `public`, `admin`.
    #[error("cannot listen on {addr} ({listener} listener): {source}{}", bind_hint(.listener, .source))]
    Bind {
        listener: &'static str,
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
    /// A TLS listener's certificates do not load.
    #[error("TLS listener {addr}: {reason}")]
    Tls {
        addr: SocketAddr,
        #[source]
        reason: Box<crate::tls::CertError>,
    },
    /// The Redis session store's settings do not make a client.
    #[error("session store: {reason}")]
    SessionStore {
        #[source]
        reason: crate::session::StoreError,
    },
    /// No session-token key was configured and the operating system gave no random one.
    #[error("a random session-token key from the operating system: {reason}")]
    TokenKey { reason: String },
    /// The router's thread could not be started.
    #[error("cannot start the router thread: {0}")]
    Thread(#[source] io::Error),
    /// The router's thread ended before it said whether it serves.
    #[error("the router thread ended during start")]
    ThreadEnded,
    /// `switchyard demo`: its in-process test backends (or their runtime) did not start.
    #[error("{what}: {source}")]
    Demo {
        what: String,
        #[source]
        source: io::Error,
    },
}

impl StartupError {
    /// The process's exit code: 2 for what the operator's files say (config, logging), 1
    /// for what the machine refused.
    pub fn exit_code(&self) -> u8 {
        match self {
            StartupError::Config { .. } | StartupError::Logging { .. } => 2,
            _ => 1,
        }
    }
}

fn indented(err: &ConfigError) -> String {
    err.issues
        .iter()
        .map(|issue| format!("  {issue}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// What to change when an address is taken: the config key, or the demo's flag.
fn bind_hint(listener: &str, source: &io::Error) -> String {
    if source.kind() != io::ErrorKind::AddrInUse {
        return String::new();
    }
    let (key, flag) = match listener {
        "admin" => ("node.admin_listen", "--admin-listen"),
        _ => ("node.listen (or a listener's address)", "--listen"),
    };
    format!(
        " — another process holds it: stop that one, or choose another address ({key} in the config; {flag} for `switchyard demo`)"
    )
}
