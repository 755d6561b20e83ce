//! A config reload, the one way for every trigger (SIGHUP, `POST /admin/v1/reload`, an
//! embedding program's `RouterHandle::reload`): the file is read and validated (an invalid one
//! changes nothing, and is logged with every issue and counted), the TLS listeners load their
//! certificate files again (a set that does not load keeps the old one), and the supervisor
//! applies the new config ([`super::supervisor::Reload`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use actix::Addr;

use super::supervisor::{Reload, ReloadReport, RouterSupervisor};
use crate::config::{Config, ConfigError};
use crate::tls::SniResolver;

/// Why a reload changed nothing.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The file does not load: every issue, with its key path.
    #[error("{} is invalid; the running config stays", file.display())]
    Invalid {
        file: PathBuf,
        #[source]
        source: ConfigError,
    },
    /// The router is stopping (or its actors are gone).
    #[error("the router's supervisor did not answer")]
    Unavailable,
    /// No runtime to wait for the supervisor on (a blocking caller).
    #[error("reload: {0}")]
    Io(#[from] std::io::Error),
}

/// What a reload did: the supervisor's report and each TLS listener's certificates.
#[derive(Debug)]
pub struct Reloaded {
    pub report: ReloadReport,
    pub certificates: Vec<Certificates>,
}

/// One TLS listener's certificate files after a reload.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Certificates {
    pub files: Vec<PathBuf>,
    pub reloaded: bool,
    /// Why they did not load (the old ones stay).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Reads and validates `file`. An invalid one is logged (with every issue) and counted in
/// `switchyard_config_reloads_total{outcome="invalid"}`. Blocking: reads the file.
pub fn load(file: &Path) -> Result<Config, ReloadError> {
    Config::load(file).map_err(|source| {
        metrics::counter!("switchyard_config_reloads_total", "outcome" => "invalid").increment(1);
        tracing::error!(file = %file.display(), "reload refused: the file is invalid; the running config stays");
        for issue in &source.issues {
            tracing::error!("  {issue}");
        }
        ReloadError::Invalid {
            file: file.to_path_buf(),
            source,
        }
    })
}

/// Applies a validated `config`: the TLS listeners' certificates first, then the routes,
/// pools and backends (the supervisor counts and logs what it applied).
pub async fn apply(
    supervisor: &Addr<RouterSupervisor>,
    tls: &[Arc<SniResolver>],
    config: Config,
) -> Result<Reloaded, ReloadError> {
    let certificates = tls
        .iter()
        .map(|resolver| {
            let error = resolver.reload().err().map(|err| err.to_string());
            if let Some(reason) = &error {
                tracing::error!(%reason, "TLS certificates do not load: keeping the old ones");
            }
            Certificates {
                files: resolver.files(),
                reloaded: error.is_none(),
                error,
            }
        })
        .collect();
    let report = supervisor
        .send(Reload(config))
        .await
        .map_err(|_| ReloadError::Unavailable)?;
    Ok(Reloaded {
        report,
        certificates,
    })
}
