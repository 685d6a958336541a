//! The `vitals` command: `vitals demo` runs a collector, two instrumented
//! services and their load in one process; `vitals collector` runs the
//! collector, `vitals collector keys create` makes API keys. Every flag can also come
//! from an environment variable (shown in `--help`) or the `--config` TOML
//! file, and every key of the file from a `VITALS_<SECTION>_<KEY>` variable;
//! a flag beats the environment, which beats the file.

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use vitals_collector::{Collector, Role, store};

mod demo;
mod errors;
mod settings;

use settings::{ServeArgs, env_rule_help, read_config, setting_hint, vitals_env};

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
#[command(args_conflicts_with_subcommands = true, after_help = env_rule_help())]
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
    /// List the stored keys: id, tenant, role and when each was made (never a secret).
    List(KeysList),
    /// Revoke a key by the id `keys list` shows; a running collector refuses it within 10 s.
    Revoke(KeysRevoke),
}

/// Where the keys are: the store, from a flag or the configuration.
#[derive(Args, Debug)]
struct StoreChoice {
    /// Store URL [default: from --config, else sqlite://vitals.db].
    #[arg(long, env = "VITALS_STORE", hide_env_values = true)]
    store: Option<String>,
    /// TOML configuration file to read the store URL from.
    #[arg(long, env = "VITALS_CONFIG")]
    config: Option<std::path::PathBuf>,
}

impl StoreChoice {
    /// Opens the chosen store. The settings are read (and checked) even
    /// when the store comes from --store: a mistake shows here as it
    /// would when the collector starts.
    async fn open(&self) -> Result<std::sync::Arc<dyn vitals_collector::Store>> {
        let c = read_config(self.config.as_deref(), vitals_env())?;
        c.validate()
            .map_err(|e| anyhow::anyhow!("invalid setting: {e}{}", setting_hint(&e)))?;
        let url = self.store.clone().unwrap_or(c.store);
        store::open(&url)
            .await
            .with_context(|| format!("cannot open store {}", store::redact_password(&url)))
    }
}

#[derive(Args, Debug)]
struct KeysList {
    /// Only this tenant's keys.
    #[arg(long, env = "VITALS_TENANT")]
    tenant: Option<String>,
    #[command(flatten)]
    store: StoreChoice,
}

#[derive(Args, Debug)]
struct KeysRevoke {
    /// The key's id as `keys list` shows it (at least 8 of its hex digits).
    id: String,
    #[command(flatten)]
    store: StoreChoice,
}

#[derive(Args, Debug)]
struct KeysCreate {
    /// Tenant the key belongs to (1-64 of letters, digits, '.', '_', '-').
    #[arg(long, env = "VITALS_TENANT")]
    tenant: String,
    /// What the key may do: `ingest` (POST /v1/ingest, /v1/requests), `read` (query API)
    /// or `admin` (writes alert rules, and reads).
    #[arg(long, env = "VITALS_ROLE")]
    role: Role,
    #[command(flatten)]
    store: StoreChoice,
}

/// `created_ms` as an HTTP date (`Mon, 07 Dec 2026 23:40:12 GMT`).
fn format_utc(created_ms: vitals_collector::model::UnixMs) -> String {
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_millis(created_ms.max(0) as u64);
    httpdate::fmt_http_date(at)
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
        Some(CollectorAction::Keys(KeysCmd::List(k))) => {
            let store = k.store.open().await?;
            let keys = vitals_collector::auth::list_keys(&*store, k.tenant.as_deref())
                .await
                .context("cannot list the keys")?;
            println!("{:<14}{:<8}{:<31}tenant", "id", "role", "created");
            for key in &keys {
                println!(
                    "{:<14}{:<8}{:<31}{}",
                    vitals_collector::auth::key_id(key),
                    key.role.as_str(),
                    format_utc(key.created_ms),
                    key.tenant
                );
            }
            eprintln!("{} key(s)", keys.len());
            Ok(())
        }
        Some(CollectorAction::Keys(KeysCmd::Revoke(k))) => {
            let store = k.store.open().await?;
            let gone = vitals_collector::auth::revoke_key(&*store, &k.id)
                .await
                .context("cannot revoke the key")?;
            eprintln!(
                "revoked the {} key {} of tenant {:?}; a running collector refuses it within {} s",
                gone.role,
                vitals_collector::auth::key_id(&gone),
                gone.tenant,
                vitals_collector::auth::KEY_CACHE_TTL.as_secs()
            );
            Ok(())
        }
        Some(CollectorAction::Keys(KeysCmd::Create(k))) => {
            let store = k.store.open().await?;
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
            let listener = tokio::net::TcpListener::bind(&listen).await.map_err(|e| {
                errors::cannot_listen(e, &listen, "the collector", "--listen", "VITALS_LISTEN")
            })?;
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
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let outcome = if let Command::Collector(cmd) = &cli.command
        && cmd.action.is_none()
        && cmd.serve.listen.as_deref() == Some("")
    {
        Err(anyhow::anyhow!("--listen must not be empty"))
    } else {
        run(cli).await
    };
    match outcome {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{}", errors::report(&e));
            std::process::ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }
}
