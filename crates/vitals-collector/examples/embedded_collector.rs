//! A collector inside your own program: a store (in memory by default),
//! one ingest key and one read key, served until Ctrl-C.
//!
//! Run: `cargo run -p vitals-collector --example embedded_collector -- --listen 127.0.0.1:7070`
//!
//! It prints `INGEST=…` and `READ=…`; set them in your shell, then send a
//! request record and read the service's figures back:
//! ```sh
//! curl -H "Authorization: Bearer $INGEST" -d '{"service":"api","requests":[{"method":"GET","route":"/users/{id}","status":200,"duration_ms":12.5}]}' http://127.0.0.1:7070/v1/requests
//! curl -H "Authorization: Bearer $READ" 'http://127.0.0.1:7070/v1/services/api/stats?window=15m'
//! ```
//! The second answers the request rate, errors, Apdex and percentiles of
//! `api` (`/v1/services` lists the services). The `push_to_collector`
//! example of vitals-server pushes to it with `--key $INGEST`.

use clap::Parser;
use vitals_collector::{Collector, CollectorConfig, Role};

/// A collector embedded in a program.
#[derive(Parser)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:7070")]
    listen: String,
    /// Store URL: `sqlite::memory:`, `sqlite://file.db`, `postgres://…`.
    #[arg(long, default_value = "sqlite::memory:")]
    store: String,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let config = CollectorConfig {
        store: args.store,
        ..Default::default()
    };
    let collector = Collector::open(config).await?;
    let ingest = collector.create_key("demo", Role::Ingest).await?;
    println!("INGEST={ingest}");
    println!("READ={}", collector.create_key("demo", Role::Read).await?);
    let listener = tokio::net::TcpListener::bind(&args.listen).await?;
    println!("collector on http://{}", listener.local_addr()?);
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    collector.serve(listener, ctrl_c).await?;
    Ok(())
}
