//! `switchyard-backend --listen ADDR --id ID`: the test backend as a process. Prints nothing but
//! errors.
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::process::ExitCode;

use clap::Parser;
use switchyard_load::TestBackend;

#[derive(Parser, Debug)]
#[command(
    name = "switchyard-backend",
    version,
    about = "Switchyard's test backend"
)]
struct Args {
    /// Address to serve on, e.g. 127.0.0.1:9000 (port 0 picks a free one).
    #[arg(long)]
    listen: SocketAddr,
    /// Id this backend answers with (body and X-Backend-Id).
    #[arg(long)]
    id: String,
    /// Runtime worker threads.
    #[arg(long, default_value_t = 1)]
    threads: usize,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads.max(1))
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("switchyard-backend: cannot start runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        let backend = match TestBackend::start(&args.id, args.listen).await {
            Ok(backend) => backend,
            Err(err) => {
                eprintln!(
                    "switchyard-backend: cannot listen on {}: {err}",
                    args.listen
                );
                return ExitCode::FAILURE;
            }
        };
        let _ = tokio::signal::ctrl_c().await;
        backend.stop().await;
        ExitCode::SUCCESS
    })
}
