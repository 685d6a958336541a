//! The `vitals` command: `vitals demo` runs a collector, two instrumented
//! services and their load in one process; `vitals collector` runs the
//! collector, `vitals collector keys create` makes API keys. Every flag can also come
//! from an environment variable (shown in `--help`) or the `--config` TOML
//! file; a flag beats the environment, which beats the file.

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use vitals_collector::{Collector, CollectorConfig, Role, store};

mod demo;

#[derive(Parser, Debug)]
#[command(
    name = "vitals",
    version,
    about = "Vitals: metrics for async Rust servers, and the collector where many services' numbers meet"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a collector on the embedded store, two instrumented services that
    /// push to it (frontend calls users), and load; print the collector's view.
    Demo(DemoCmd),
    /// Run the collector (ingest, storage, rollups, query API), or manage its keys.
    Collector(Box<CollectorCmd>),
}

#[derive(Args, Debug)]
struct DemoCmd {
    /// Collector address.
    #[arg(long, env = "VITALS_DEMO_LISTEN", default_value = "127.0.0.1:7070")]
    listen: String,
    /// Address of the frontend service; users takes the next port (port 0: any free ports).
    #[arg(
        long,
        env = "VITALS_DEMO_SERVICE_LISTEN",
        default_value = "127.0.0.1:3000"
    )]
    service_listen: String,
    /// Store URL (embedded SQLite by default; sqlite::memory: keeps nothing).
    #[arg(
        long,
        env = "VITALS_DEMO_STORE",
        default_value = "sqlite://vitals-demo.db"
    )]
    store: String,
    /// Stop after this long, like 30s or 5m [default: run until Ctrl-C].
    #[arg(long, env = "VITALS_DEMO_DURATION")]
    duration: Option<String>,
    /// Requests per second the load generator sends (1-10000).
    #[arg(long, env = "VITALS_DEMO_RATE", default_value_t = 50,
          value_parser = clap::value_parser!(u32).range(1..=10_000))]
    rate: u32,
    /// How often the services push to the collector, like 2s.
    #[arg(long, env = "VITALS_DEMO_PUSH_INTERVAL", default_value = "2s")]
    push_interval: String,
}

impl DemoCmd {
    fn args(&self) -> Result<demo::DemoArgs> {
        let duration = |flag: &str, text: &str| -> Result<std::time::Duration> {
            let ms = vitals_collector::config::parse_duration_ms(text)
                .map_err(|e| anyhow::anyhow!("{flag}: {e}"))?;
            if ms <= 0 {
                bail!("{flag} must be positive, got {text:?}");
            }
            Ok(std::time::Duration::from_millis(ms as u64))
        };
        Ok(demo::DemoArgs {
            listen: self.listen.clone(),
            service_listen: self.service_listen.clone(),
            store: self.store.clone(),
            duration: self
                .duration
                .as_deref()
                .map(|d| duration("--duration", d))
                .transpose()?,
            rate: self.rate,
            push_interval: duration("--push-interval", &self.push_interval)?,
        })
    }
}

#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
struct CollectorCmd {
    #[command(subcommand)]
    action: Option<CollectorAction>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Subcommand, Debug)]
enum CollectorAction {
    /// Manage API keys.
    #[command(subcommand)]
    Keys(KeysCmd),
}

#[derive(Subcommand, Debug)]
enum KeysCmd {
    /// Create a key for a tenant and print it (it is stored only hashed: keep it).
    Create(KeysCreate),
}

#[derive(Args, Debug)]
struct KeysCreate {
    /// Tenant the key belongs to (1-64 of letters, digits, '.', '_', '-').
    #[arg(long, env = "VITALS_TENANT")]
    tenant: String,
    /// What the key may do: `ingest` (POST /v1/ingest, /v1/requests) or `read` (query API).
    #[arg(long, env = "VITALS_ROLE")]
    role: Role,
    /// Store URL [default: from --config, else sqlite://vitals.db].
    #[arg(long, env = "VITALS_STORE")]
    store: Option<String>,
    /// TOML configuration file to read the store URL from.
    #[arg(long, env = "VITALS_CONFIG")]
    config: Option<std::path::PathBuf>,
}

#[derive(Args, Debug, Default)]
struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:7070].
    #[arg(long, env = "VITALS_LISTEN")]
    listen: Option<String>,
    /// Store URL: sqlite://PATH, sqlite::memory: or postgres://… [default: sqlite://vitals.db].
    #[arg(long, env = "VITALS_STORE")]
    store: Option<String>,
    /// Shared hot tier for the last minutes, redis://… (optional; `?prefix=P` sets the key prefix, default vitals:).
    #[arg(long, env = "VITALS_CACHE")]
    cache: Option<String>,
    /// Hot tier: recent minutes kept in Redis, whole minutes from 1m to 1d [default: 15m].
    #[arg(long, env = "VITALS_HOT_WINDOW")]
    hot_window: Option<String>,
    /// Hot tier: pause between background flush passes into the store, 1s to 10m [default: 5s].
    #[arg(long, env = "VITALS_HOT_FLUSH_INTERVAL")]
    hot_flush_interval: Option<String>,
    /// Hot tier: wait after a minute ends before flushing it, 0s to 59s [default: 5s].
    #[arg(long, env = "VITALS_HOT_FLUSH_GRACE")]
    hot_flush_grace: Option<String>,
    /// Hot tier: age at which another collector takes over an interrupted flush, 1s to 1h [default: 30s].
    #[arg(long, env = "VITALS_HOT_ORPHAN_AFTER")]
    hot_orphan_after: Option<String>,
    /// Hot tier: how long batch ids are remembered against retries, 1m to 30d [default: 1h].
    #[arg(long, env = "VITALS_HOT_DEDUP_WINDOW")]
    hot_dedup_window: Option<String>,
    /// Hot tier: recent sampled requests kept per service, 1 to 100000 [default: 1000].
    #[arg(long, env = "VITALS_HOT_RECENT_SAMPLES")]
    hot_recent_samples: Option<usize>,
    /// TOML configuration file; every setting here has a key there too
    /// (limits under [limits], retention under [retention], hot tier under
    /// [hot_tier], per-service Apdex and objectives under [defaults] and
    /// [services.NAME]).
    #[arg(long, env = "VITALS_CONFIG")]
    config: Option<std::path::PathBuf>,
    /// Seconds between rollup passes (1-minute → 5-minute → 1-hour) [default: 10].
    #[arg(long, env = "VITALS_ROLLUP_INTERVAL_SECS")]
    rollup_interval_secs: Option<u64>,
    /// How long 1-minute buckets are kept, like 2d or 36h [default: 2d].
    #[arg(long, env = "VITALS_RETENTION_MINUTE")]
    retention_minute: Option<String>,
    /// How long 5-minute buckets are kept [default: 14d].
    #[arg(long, env = "VITALS_RETENTION_FIVE_MINUTES")]
    retention_five_minutes: Option<String>,
    /// How long 1-hour buckets are kept [default: 400d].
    #[arg(long, env = "VITALS_RETENTION_HOUR")]
    retention_hour: Option<String>,
    /// How long sampled requests are kept [default: 2d].
    #[arg(long, env = "VITALS_RETENTION_SAMPLES")]
    retention_samples: Option<String>,
    /// Default Apdex threshold T in milliseconds for services without their own [default: 500].
    #[arg(long, env = "VITALS_APDEX_T_MS")]
    apdex_t_ms: Option<f64>,
    /// Default p95 latency objective in milliseconds; above it a service is degraded [default: 1000].
    #[arg(long, env = "VITALS_OBJECTIVE_P95_MS")]
    objective_p95_ms: Option<f64>,
    /// Largest request body accepted, bytes [default: 4194304].
    #[arg(long, env = "VITALS_MAX_BODY_BYTES")]
    max_body_bytes: Option<usize>,
    /// Largest body after gzip decompression, bytes [default: 16777216].
    #[arg(long, env = "VITALS_MAX_DECOMPRESSED_BYTES")]
    max_decompressed_bytes: Option<usize>,
    /// Distinct routes per service before new ones fold into route="__overflow__" [default: 1000].
    #[arg(long, env = "VITALS_MAX_ROUTES_PER_SERVICE")]
    max_routes_per_service: Option<usize>,
    /// Distinct services per tenant; data for more is refused [default: 1000].
    #[arg(long, env = "VITALS_MAX_SERVICES_PER_TENANT")]
    max_services_per_tenant: Option<usize>,
}

fn read_config(path: Option<&std::path::Path>) -> Result<CollectorConfig> {
    match path {
        None => Ok(CollectorConfig::default()),
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("cannot read config file {}", p.display()))?;
            CollectorConfig::from_toml(&text)
                .map_err(|e| anyhow::anyhow!("config file {}: {e}", p.display()))
        }
    }
}

impl ServeArgs {
    /// The file's configuration with every given flag (or variable) on top.
    fn config(&self) -> Result<CollectorConfig> {
        let mut c = read_config(self.config.as_deref())?;
        macro_rules! set {
            ($($flag:ident => $($field:ident).+),* $(,)?) => {$(
                if let Some(v) = &self.$flag { c.$($field).+ = v.clone().into(); }
            )*};
        }
        set!(
            listen => listen,
            store => store,
            rollup_interval_secs => rollup_interval_secs,
            retention_minute => retention.minute,
            retention_five_minutes => retention.five_minutes,
            retention_hour => retention.hour,
            retention_samples => retention.samples,
            max_body_bytes => limits.max_body_bytes,
            max_decompressed_bytes => limits.max_decompressed_bytes,
            max_routes_per_service => limits.max_routes_per_service,
            max_services_per_tenant => limits.max_services_per_tenant,
            hot_window => hot_tier.window,
            hot_flush_interval => hot_tier.flush_interval,
            hot_flush_grace => hot_tier.flush_grace,
            hot_orphan_after => hot_tier.orphan_after,
            hot_dedup_window => hot_tier.dedup_window,
            hot_recent_samples => hot_tier.recent_samples,
        );
        if self.cache.is_some() {
            c.cache.clone_from(&self.cache);
        }
        if self.apdex_t_ms.is_some() {
            c.defaults.apdex_t_ms = self.apdex_t_ms;
        }
        if self.objective_p95_ms.is_some() {
            c.defaults.objective_p95_ms = self.objective_p95_ms;
        }
        c.validate()
            .map_err(|e| anyhow::anyhow!("invalid setting: {e}{}", flag_hint(&e)))?;
        Ok(c)
    }
}

/// Names the flag and variable of a sectioned setting an error is about
/// (`hot_tier.flush_grace` → `--hot-flush-grace`), since the value may
/// have come from any of the three places.
fn flag_hint(error: &str) -> String {
    let Some((setting, _)) = error.split_once(' ') else {
        return String::new();
    };
    let flag = if let Some(rest) = setting.strip_prefix("hot_tier.") {
        format!("hot_{rest}")
    } else if let Some(rest) = setting.strip_prefix("retention.") {
        format!("retention_{rest}")
    } else {
        return String::new();
    };
    let flag = flag.trim_end_matches(':');
    format!(
        " (set by --{}, VITALS_{} or the config file)",
        flag.replace('_', "-"),
        flag.to_ascii_uppercase()
    )
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}

async fn run(cli: Cli) -> Result<()> {
    let cmd = match cli.command {
        Command::Demo(d) => return demo::run(d.args()?, shutdown_signal()).await,
        Command::Collector(cmd) => *cmd,
    };
    match cmd.action {
        Some(CollectorAction::Keys(KeysCmd::Create(k))) => {
            let url = match k.store {
                Some(s) => s,
                None => read_config(k.config.as_deref())?.store,
            };
            let store = store::open(&url)
                .await
                .with_context(|| format!("cannot open store {}", store::redact_password(&url)))?;
            let key = vitals_collector::auth::create_key(
                &*store,
                &k.tenant,
                k.role,
                vitals_collector::now_ms(),
            )
            .await
            .context("cannot create the key")?;
            println!("{key}");
            eprintln!(
                "created a {} key for tenant {:?}; it is stored only hashed, so keep it now",
                k.role, k.tenant
            );
            Ok(())
        }
        None => {
            let config = cmd.serve.config()?;
            let listen = config.listen.clone();
            let store_url = config.store.clone();
            let collector = Collector::open(config).await.with_context(|| {
                format!(
                    "cannot start the collector (store {})",
                    store::redact_password(&store_url)
                )
            })?;
            let listener = tokio::net::TcpListener::bind(&listen)
                .await
                .with_context(|| format!("cannot listen on {listen}"))?;
            let addr = listener.local_addr()?;
            eprintln!(
                "vitals collector listening on http://{addr} (store {})",
                store::redact_password(&store_url)
            );
            collector.serve(listener, shutdown_signal()).await?;
            eprintln!("vitals collector stopped");
            Ok(())
        }
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let cli = Cli::parse();
    if let Command::Collector(cmd) = &cli.command
        && cmd.action.is_none()
        && cmd.serve.listen.as_deref() == Some("")
    {
        bail!("--listen must not be empty");
    }
    run(cli).await
}
