//! The `switchyard` command: `serve`, `check-config`, `demo`.
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use switchyard::config::{Config, LogConfig, LogFormat};
use switchyard::demo::{Demo, DemoOptions};
use switchyard::telemetry;

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
    /// Run the router in front of built-in test backends: no config, no Redis.
    Demo {
        /// Public listener.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// Admin listener (/metrics, /healthz, /readyz).
        #[arg(long, default_value = "127.0.0.1:9901")]
        admin_listen: SocketAddr,
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
        Command::Serve { config } => {
            let config = match Config::load(&config) {
                Ok(c) => c,
                Err(err) => {
                    eprintln!("{}: invalid configuration", config.display());
                    for issue in &err.issues {
                        eprintln!("  {issue}");
                    }
                    return ExitCode::from(2);
                }
            };
            let _logs = telemetry::init_logging(&config.log);
            let delay = config.node.shutdown_delay;
            match switchyard::start(config) {
                Ok(router) => {
                    wait_for_shutdown_signal();
                    router.stop_after(delay);
                    ExitCode::SUCCESS
                }
                Err(err) => {
                    eprintln!("switchyard: {err}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Demo {
            listen,
            admin_listen,
        } => {
            let _logs = telemetry::init_logging(&LogConfig {
                access: true,
                format: LogFormat::Text,
                level: "info".to_string(),
            });
            match Demo::start(&DemoOptions {
                listen,
                admin_listen,
            }) {
                Ok(demo) => {
                    print!("{}", demo.banner());
                    use std::io::Write;
                    let _ = std::io::stdout().flush();
                    wait_for_shutdown_signal();
                    demo.stop();
                    ExitCode::SUCCESS
                }
                Err(err) => {
                    eprintln!("switchyard demo: {err}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// Blocks until SIGINT (Ctrl-C) or SIGTERM.
fn wait_for_shutdown_signal() {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("switchyard: cannot wait for signals: {err}");
            return;
        }
    };
    runtime.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing a SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    });
}
