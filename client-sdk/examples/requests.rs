//! Requests through `switchyard demo` (run it first: `cargo run -p switchyard -- demo`).
//!
//!     cargo run -p switchyard-client --example requests
//!
//! With `switchyard demo --regions 3`, the region order comes from the directory instead:
//!
//!     cargo run -p switchyard-client --example requests -- --directory

use switchyard_client::Client;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let builder = Client::builder();
    let client = match std::env::args().any(|a| a == "--directory") {
        true => builder.directory("http://127.0.0.1:8080/v1/regions?lat=48.86&lon=2.35"),
        false => builder.region("local", "http://127.0.0.1:8080"),
    }
    .build()?;
    println!("regions in order: {:?}", client.regions().await);
    for _ in 0..6 {
        match client.get("/api/titles").await {
            Ok(resp) => println!(
                "{} from {} via region {}",
                resp.status,
                resp.backend().unwrap_or("-"),
                resp.region
            ),
            Err(err) => println!("failed: {err}"),
        }
    }
    println!("{:?}", client.stats());
    Ok(())
}
