//! The `switchyard` command: `serve`, `check-config`, `demo`.
#![forbid(unsafe_code)]

#[cfg(feature = "demo")]
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use switchyard::config::Config;
use switchyard::control::reload::ReloadError;
use switchyard::startup::StartupError;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Debug)]
#[command(
    name = "switchyard",
    version,
    about = "Switchyard: a streaming session router"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Serve with a configuration file.
    Serve {
        /// The TOML configuration file.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Validate a configuration file without serving; exits non-zero if it is invalid.
    CheckConfig {
        /// The TOML configuration file.
        file: PathBuf,
    },
    /// GET a URL and exit 0 on a 2xx answer, 1 otherwise: a health check for containers
    /// and exec probes (e.g. `switchyard probe http://127.0.0.1:9901/readyz`).
    Probe {
        /// An http:// URL.
        url: String,
        /// Longest wait for the whole answer.
        #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
        timeout: std::time::Duration,
    },
    /// Run the router in front of built-in test backends: no config, no Redis.
    #[cfg(feature = "demo")]
    Demo {
        /// Public listener.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// Admin listener (/admin/v1/..., /metrics, /healthz, /readyz).
        #[arg(long, default_value = "127.0.0.1:9901")]
        admin_listen: SocketAddr,
        /// Run N regions (1-8) at real data-centre locations: region k listens on the
        /// listen port + k and the admin port + k.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=8))]
        regions: u16,
        /// Also run N viewers (0-2000): each holds a WebSocket session on /ws/echo through the
        /// (first) router and sends a message a second, so a drain in the console has sessions
        /// to move.
        #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u16).range(0..=2000))]
        viewers: u16,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::CheckConfig { file } => match Config::load(&file) {
            Ok(config) => {
                println!(
                    "{}: ok ({} routes, {} pools, {} backends)",
                    file.display(),
                    config.routes.len(),
                    config.pools.len(),
                    config.backend_count()
                );
                ExitCode::SUCCESS
            }
            Err(err) => {
                eprintln!("{}: invalid configuration", file.display());
                for issue in &err.issues {
                    eprintln!("  {issue}");
                }
                ExitCode::from(2)
            }
        },
        Command::Serve { config } => match serve(config) {
            Ok(()) => ExitCode::SUCCESS,
            Err(err @ StartupError::Config { .. }) => {
                eprintln!("{err}");
                ExitCode::from(err.exit_code())
            }
            Err(err) => {
                eprintln!("switchyard: {err}");
                ExitCode::from(err.exit_code())
            }
        },
        Command::Probe { url, timeout } => probe(&url, timeout),
        #[cfg(feature = "demo")]
        Command::Demo {
            listen,
            admin_listen,
            regions,
            viewers,
        } => demo(listen, admin_listen, regions, viewers),
    }
}

/// `switchyard probe URL`: quiet on success (probes run every few seconds), one line on failure.
fn probe(url: &str, timeout: std::time::Duration) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("switchyard probe: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(switchyard::probe::probe(url, timeout)) {
        Ok(_) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("switchyard probe: {err}");
            ExitCode::FAILURE
        }
    }
}

/// `--viewers N`: N SDK sessions on `/ws/echo` through `router`, each sending a message a
/// second (the load tools' viewers), opened 50 a second on a runtime of their own.
#[cfg(feature = "demo")]
fn demo_viewers(
    router: SocketAddr,
    n: usize,
) -> (tokio::runtime::Runtime, tokio::sync::watch::Sender<bool>) {
    use switchyard_load::viewers::{self, Plan, Tally};
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("demo-viewers")
        .enable_all()
        .build()
        .expect("a runtime for the demo's viewers");
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let plan = Plan::echo_in_one_region(
        vec![format!("http://{router}")],
        std::time::Duration::from_secs(1),
    );
    let _inside = runtime.enter();
    viewers::start(
        &plan,
        n,
        50.0,
        std::sync::Arc::new(Tally::default()),
        stopped,
    );
    println!(
        "{n} viewers hold sessions on /ws/echo (a message a second each): drain a ws-* backend in the console and watch them move"
    );
    (runtime, stop)
}

/// `switchyard demo`: the router in front of in-process test backends, one region or several.
#[cfg(feature = "demo")]
fn demo(listen: SocketAddr, admin_listen: SocketAddr, regions: u16, viewers: u16) -> ExitCode {
    use switchyard::config::{LogConfig, LogFormat};
    use switchyard::demo::{Demo, DemoOptions};

    let _logs = switchyard::logging::init_logging(&LogConfig {
        access: true,
        format: LogFormat::Text,
        level: "info".to_string(),
        access_path: None,
    });
    let shifted = |base: SocketAddr, k: u16| {
        base.port()
            .checked_add(k)
            .map(|port| SocketAddr::new(base.ip(), port))
    };
    let started = match regions {
        1 => Demo::start(&DemoOptions {
            listen,
            admin_listen,
            region: None,
        })
        .map(|demo| {
            let banner = demo.banner();
            (vec![demo], banner)
        }),
        n => {
            let (Some(listens), Some(admins)) = (
                (0..n)
                    .map(|k| shifted(listen, k))
                    .collect::<Option<Vec<_>>>(),
                (0..n)
                    .map(|k| shifted(admin_listen, k))
                    .collect::<Option<Vec<_>>>(),
            ) else {
                eprintln!("switchyard demo: ports + {n} regions run past 65535");
                return ExitCode::FAILURE;
            };
            switchyard::demo::start_regions(&listens, &admins).map(|demos| {
                let banner = switchyard::demo::regions_banner(&demos);
                (demos, banner)
            })
        }
    };
    match started {
        Ok((demos, banner)) => {
            print!("{banner}");
            let load = match (viewers, demos.first()) {
                (0, _) | (_, None) => None,
                (n, Some(first)) => Some(demo_viewers(first.router().addr(), usize::from(n))),
            };
            use std::io::Write;
            let _ = std::io::stdout().flush();
            wait_for_shutdown_signal();
            if let Some((runtime, stop)) = load {
                let _ = stop.send(true);
                runtime.shutdown_background();
            }
            for demo in demos {
                demo.stop();
            }
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("switchyard demo: {err}");
            ExitCode::FAILURE
        }
    }
}

/// `switchyard serve`: loads the file, sets up logging, starts the router and serves until
/// SIGINT or SIGTERM.
fn serve(file: PathBuf) -> Result<(), StartupError> {
    let config = Config::load(&file).map_err(|source| StartupError::Config { file, source })?;
    let _logs = switchyard::logging::init_logging(&config.log)
        .map_err(|reason| StartupError::Logging { reason })?;
    let delay = config.node.shutdown_delay;
    let path = config.source.clone();
    let router = switchyard::start(config)?;
    serve_until_stopped(&router, path);
    router.stop_after(delay);
    Ok(())
}

/// Serves until SIGINT or SIGTERM; on SIGHUP reloads the config file (an invalid one is
/// reported with its key paths and changes nothing).
fn serve_until_stopped(router: &switchyard::RouterHandle, path: Option<PathBuf>) {
    let Some(runtime) = signal_runtime() else {
        return;
    };
    runtime.block_on(async {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut term), Ok(mut hup)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::hangup()),
        ) else {
            eprintln!("switchyard: cannot install signal handlers");
            return;
        };
        loop {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => return,
                _ = term.recv() => return,
                _ = hup.recv() => {
                    // Log rotation moved the access file away: the next line opens a new one.
                    switchyard::logging::reopen_access_log();
                    let Some(path) = &path else { continue };
                    // An invalid file is logged with its issues by the reload itself.
                    if let Err(err) = router.reload_file(path).await
                        && !matches!(err, ReloadError::Invalid { .. })
                    {
                        tracing::error!(error = %err, "reload failed");
                    }
                }
            }
        }
    });
}

/// A small runtime to wait for signals on the main thread (the router runs on its own).
fn signal_runtime() -> Option<tokio::runtime::Runtime> {
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => Some(rt),
        Err(err) => {
            eprintln!("switchyard: cannot wait for signals: {err}");
            None
        }
    }
}

/// Blocks until SIGINT (Ctrl-C) or SIGTERM.
#[cfg(feature = "demo")]
fn wait_for_shutdown_signal() {
    let Some(runtime) = signal_runtime() else {
        return;
    };
    runtime.block_on(async {
        let Ok(mut term) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        else {
            eprintln!("switchyard: cannot install a SIGTERM handler; Ctrl-C still stops");
            let _ = tokio::signal::ctrl_c().await;
            return;
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    });
}
