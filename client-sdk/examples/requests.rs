//! Requests through `switchyard demo` (run it first: `cargo run -p switchyard -- demo`).
//!
//!     cargo run -p switchyard-client --example requests
//!
//! With `switchyard demo --regions 3`, the region order comes from the directory instead:
//!
//!     cargo run -p switchyard-client --example requests -- --directory
//!
//! The router's address is `SWITCHYARD_URL` (default `http://127.0.0.1:8080`, the demo's).
//!
//! Or from a configuration file (JSON or TOML, as in docs/SDK.md):
//!
//!     cargo run -p switchyard-client --example requests -- --config client.toml

use std::time::Duration;

use switchyard_client::{Client, ClientBuilder, ClientConfig, Request};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let router = std::env::var("SWITCHYARD_URL").unwrap_or_else(|_| "http://127.0.0.1:8080".into());
    let builder = match args.iter().position(|a| a == "--config") {
        Some(i) => {
            let path = args.get(i + 1).ok_or("--config needs a file")?;
            let text = std::fs::read_to_string(path)?;
            let config = match path.ends_with(".json") {
                true => ClientConfig::from_json(&text)?,
                false => ClientConfig::from_toml(&text)?,
            };
            ClientBuilder::from_config(config)
        }
        None if args.iter().any(|a| a == "--directory") => {
            Client::builder().directory(format!("{router}/v1/regions?lat=48.86&lon=2.35"))
        }
        None => Client::builder().region("local", router.as_str()),
    };
    let client = builder.build()?;
    println!("regions in order: {:?}", client.regions().await);
    for _ in 0..6 {
        let req = Request::new(http::Method::GET, "/api/titles")
            .header("X-Trace-Id", "example")
            .timeout(Duration::from_secs(2));
        match client.request(req).await {
            Ok(resp) => println!(
                "{} ({:?}) from {} via region {}",
                resp.status,
                resp.version,
                resp.backend().unwrap_or("-"),
                resp.region
            ),
            Err(err) => println!("failed: {err}"),
        }
    }
    // A large body, read as it arrives instead of whole.
    let mut stream = client
        .request_streaming(Request::new(
            http::Method::GET,
            "/stream/movie?bytes=20000000",
        ))
        .await?;
    let mut total = 0;
    while let Some(chunk) = stream.chunk().await? {
        total += chunk.len();
    }
    println!("streamed {total} bytes");
    println!("{:?}", client.stats());
    Ok(())
}
