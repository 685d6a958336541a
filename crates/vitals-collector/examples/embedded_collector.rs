//! Runs a collector inside your own program: an in-memory store, one
//! ingest key and one read key, served until Ctrl-C.
//!
//! ```sh
//! cargo run -p vitals-collector --example embedded_collector -- 127.0.0.1:7070
//! ```
//! then, with the keys it prints:
//! ```sh
//! curl -H "Authorization: Bearer $INGEST" -d '{"service":"api","requests":[{"method":"GET","route":"/users/{id}","status":200,"duration_ms":12.5}]}' http://127.0.0.1:7070/v1/requests
//! curl -H "Authorization: Bearer $READ" 'http://127.0.0.1:7070/v1/services/api/stats?window=15m'
//! ```

use vitals_collector::{Collector, CollectorConfig, Role};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let listen = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:7070".into());
    let config = CollectorConfig {
        store: "sqlite::memory:".into(),
        ..Default::default()
    };
    let collector = Collector::open(config).await?;
    println!(
        "INGEST={}",
        collector.create_key("demo", Role::Ingest).await?
    );
    println!("READ={}", collector.create_key("demo", Role::Read).await?);
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    println!("collector on http://{}", listener.local_addr()?);
    collector
        .serve(listener, async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
