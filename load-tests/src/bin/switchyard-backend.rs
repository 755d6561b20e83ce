//! `switchyard-backend --listen ADDR --id ID [--grpc ADDR]`: the test backend as a process
//! (with `--grpc`, also the gRPC Echo and health services on that address, HTTP/2 cleartext).
//! Prints nothing but errors.
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
    /// Also serve gRPC (`switchyard.test.Echo` and `grpc.health.v1`) on this address, for a
    /// pool with `protocol = "h2"`.
    #[arg(long)]
    grpc: Option<SocketAddr>,
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
        let grpc = match args.grpc {
            None => None,
            Some(addr) => match switchyard_load::grpc::GrpcBackend::start(&args.id, addr).await {
                Ok(grpc) => Some(grpc),
                Err(err) => {
                    eprintln!("switchyard-backend: cannot serve gRPC on {addr}: {err}");
                    return ExitCode::FAILURE;
                }
            },
        };
        let _ = tokio::signal::ctrl_c().await;
        drop(grpc);
        backend.stop().await;
        ExitCode::SUCCESS
    })
}
