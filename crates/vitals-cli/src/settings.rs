//! What `vitals collector` is told, and from where: its flags (each with
//! its own variable), the `VITALS_<SECTION>_<KEY>` variable of every key of
//! the `--config` file, and the file. A flag beats the variables, which
//! beat the file, which beats the defaults.

use anyhow::{Context, Result, bail};
use clap::Args;
use vitals_collector::config::environment;
use vitals_collector::{CollectorConfig, ConfigError};

/// The collector's flags; each has a variable, and sets one key of the
/// configuration (listed in `flags_set!` below).
#[derive(Args, Debug, Default)]
pub(crate) struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:7070].
    #[arg(long, env = "VITALS_LISTEN")]
    pub(crate) listen: Option<String>,
    /// Store URL: sqlite://PATH, sqlite::memory: or postgres://… [default: sqlite://vitals.db].
    #[arg(long, env = "VITALS_STORE", hide_env_values = true)]
    store: Option<String>,
    /// Shared hot tier for the last minutes, redis://… (optional; `?prefix=P` sets the key prefix, default vitals:).
    #[arg(long, env = "VITALS_CACHE", hide_env_values = true)]
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
    /// [services.NAME]), and every key there a variable (see below).
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

/// Sets each given flag (or its variable) over the configuration, and
/// lists which setting each flag sets, from the one table below.
macro_rules! flags_set {
    ($($flag:ident => $($field:ident).+),* $(,)?) => {
        impl ServeArgs {
            /// Puts every flag that was given (or whose variable is set)
            /// over `c`.
            fn apply_flags(&self, c: &mut CollectorConfig) {
                $(if let Some(v) = &self.$flag { c.$($field).+ = v.clone().into(); })*
            }

            /// Each flag's argument id and the setting it sets, as the
            /// dotted TOML path (`hot_window` → `hot_tier.window`).
            fn flag_settings() -> Vec<(&'static str, String)> {
                vec![$((stringify!($flag), [$(stringify!($field)),+].join("."))),*]
            }
        }
    };
}

flags_set!(
    listen => listen,
    store => store,
    cache => cache,
    rollup_interval_secs => rollup_interval_secs,
    retention_minute => retention.minute,
    retention_five_minutes => retention.five_minutes,
    retention_hour => retention.hour,
    retention_samples => retention.samples,
    apdex_t_ms => defaults.apdex_t_ms,
    objective_p95_ms => defaults.objective_p95_ms,
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

/// The `VITALS_…` variables of this process (other variables are not
/// ours to read). A value that is not UTF-8 is read lossily, so it fails
/// as a bad value of its variable rather than vanishing.
pub(crate) fn vitals_env() -> Vec<(String, String)> {
    std::env::vars_os()
        .filter_map(|(name, value)| {
            let name = name.into_string().ok()?;
            name.starts_with(environment::PREFIX)
                .then(|| (name, value.to_string_lossy().into_owned()))
        })
        .collect()
}

/// The file (if any) with the `VITALS_<SECTION>_<KEY>` variables over it;
/// not yet validated.
pub(crate) fn read_config(
    path: Option<&std::path::Path>,
    env: Vec<(String, String)>,
) -> Result<CollectorConfig> {
    let text = match path {
        None => String::new(),
        Some(p) => std::fs::read_to_string(p)
            .with_context(|| format!("cannot read config file {}", p.display()))?,
    };
    CollectorConfig::from_toml_and_env(&text, env).map_err(|e| match (e, path) {
        (ConfigError::File(m), Some(p)) => anyhow::anyhow!("config file {}: {m}", p.display()),
        (e, _) => anyhow::anyhow!("invalid setting: {e}"),
    })
}

impl ServeArgs {
    /// The file's configuration with the environment's variables, then
    /// every given flag (or its own variable) on top.
    pub(crate) fn config(&self) -> Result<CollectorConfig> {
        let env = vitals_env();
        check_variable_pairs(&env)?;
        let mut c = read_config(self.config.as_deref(), env)?;
        self.apply_flags(&mut c);
        c.validate()
            .map_err(|e| anyhow::anyhow!("invalid setting: {e}{}", setting_hint(&e)))?;
        Ok(c)
    }
}

/// Refuses a flag's own variable (`VITALS_HOT_WINDOW`) and the general
/// one for the same setting (`VITALS_HOT_TIER_WINDOW`) set to different
/// values: which one was meant cannot be known.
fn check_variable_pairs(env: &[(String, String)]) -> Result<()> {
    let get = |name: &str| env.iter().find(|(k, _)| k == name).map(|(_, v)| v);
    for (own, path) in own_variables() {
        let general = environment::variable_for(&path);
        if own != general
            && let (Some(a), Some(b)) = (get(&own), get(&general))
            && a != b
        {
            bail!(
                "{own} and {general} both set {path}, to different values: keep one \
                 (a --{} flag would beat both)",
                flag_of(&path).unwrap_or_default()
            );
        }
    }
    Ok(())
}

/// Each flag's own variable and the setting it sets.
fn own_variables() -> Vec<(String, String)> {
    let cmd = ServeArgs::augment_args(clap::Command::new("collector"));
    ServeArgs::flag_settings()
        .into_iter()
        .filter_map(|(id, path)| {
            let arg = cmd.get_arguments().find(|a| a.get_id() == id)?;
            Some((arg.get_env()?.to_str()?.to_owned(), path))
        })
        .collect()
}

/// The flag (without `--`) that sets the setting at `path`, if one does.
fn flag_of(path: &str) -> Option<String> {
    ServeArgs::flag_settings()
        .into_iter()
        .find(|(_, p)| p == path)
        .map(|(id, _)| id.replace('_', "-"))
}

/// Names every place the setting an error is about can come from
/// (`hot_tier.flush_grace` → `--hot-flush-grace`, `VITALS_HOT_FLUSH_GRACE`,
/// `VITALS_HOT_TIER_FLUSH_GRACE` or the file), since the value may have
/// come from any of them.
pub(crate) fn setting_hint(error: &str) -> String {
    let Some(path) = error.split([' ', ':']).next() else {
        return String::new();
    };
    if let Some(rest) = path.strip_prefix("services.") {
        let name = rest.split('.').next().unwrap_or_default();
        return format!(" (set by VITALS_SERVICES or [services.{name}] in the config file)");
    }
    let Some(setting) = environment::settings()
        .into_iter()
        .find(|s| s.path() == path)
    else {
        return String::new();
    };
    let mut places = Vec::new();
    if let Some(flag) = flag_of(path) {
        places.push(format!("--{flag}"));
    }
    if let Some((own, _)) = own_variables().into_iter().find(|(_, p)| p == path)
        && own != setting.variable
    {
        places.push(own);
    }
    places.push(setting.variable.clone());
    let file = match &setting.section {
        Some(s) => format!("{} in [{s}] of the config file", setting.key),
        None => format!("{} in the config file", setting.key),
    };
    format!(" (set by {} or {file})", places.join(", "))
}

/// The `--help` text on the variables every key of the file has, with
/// the keys read from the configuration itself.
pub(crate) fn env_rule_help() -> String {
    let settings = environment::settings();
    let mut out = String::from(
        "Environment: every key of the --config file can also be set by a variable \
         VITALS_<SECTION>_<KEY>\n\
         in upper case (VITALS_<KEY> for a top-level key): VITALS_LIMITS_MAX_ROUTES_PER_BATCH=500.\n\
         A flag beats the variables, a variable beats the file, the file beats the default.\n\
         A name within a section that is not one of its keys is refused (a typo), and so is a\n\
         value the key cannot take. Where a flag has its own variable too (VITALS_HOT_WINDOW\n\
         and VITALS_HOT_TIER_WINDOW), both may be set only to the same value.\n",
    );
    let mut sections: Vec<Option<&str>> = Vec::new();
    for s in &settings {
        if !s.holds_entries() && !sections.contains(&s.section.as_deref()) {
            sections.push(s.section.as_deref());
        }
    }
    for section in sections {
        let (head, what) = match section {
            None => ("VITALS_<KEY>".to_owned(), "top level".to_owned()),
            Some(sec) => (
                format!("{}_<KEY>", environment::variable_for(sec)),
                format!("[{sec}]"),
            ),
        };
        let keys: Vec<&str> = settings
            .iter()
            .filter(|s| s.section.as_deref() == section && !s.holds_entries())
            .map(|s| s.key.as_str())
            .collect();
        out.push_str(&format!("\n  {head}  ({what})\n"));
        let mut line = String::from("     ");
        for (i, key) in keys.iter().enumerate() {
            let piece = if i + 1 < keys.len() {
                format!(" {key},")
            } else {
                format!(" {key}")
            };
            if line.len() + piece.len() > 90 {
                out.push_str(&line);
                out.push('\n');
                line = String::from("     ");
            }
            line.push_str(&piece);
        }
        out.push_str(&line);
        out.push('\n');
    }
    for s in settings.iter().filter(|s| s.holds_entries()) {
        out.push_str(&format!(
            "\n  {var}  ([{key}.NAME] entries, as TOML, merged key by key over the file's)\n      \
             {var}='checkout = {{ apdex_t_ms = 300 }}'\n      \
             {var}='{{ checkout = {{ apdex_t_ms = 300 }}, search = {{ stale_after_secs = 60 }} }}'\n",
            var = s.variable,
            key = s.key
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Cli;
    use clap::CommandFactory;

    /// Read from clap's own description of the command, so a flag added
    /// without a variable, a doc or a setting fails here.
    #[test]
    fn every_collector_flag_has_a_variable_a_doc_and_a_setting() {
        let mut cli = Cli::command();
        let collector = cli
            .find_subcommand_mut("collector")
            .expect("a collector subcommand");
        let help = collector.render_long_help().to_string();
        let flag_settings = ServeArgs::flag_settings();
        let settings = environment::settings();
        let mut flags = 0;
        for arg in collector.get_arguments() {
            let id = arg.get_id().as_str();
            if id == "help" {
                continue;
            }
            let long = arg
                .get_long()
                .unwrap_or_else(|| panic!("{id} has no --flag"));
            let var = arg
                .get_env()
                .and_then(|v| v.to_str())
                .unwrap_or_else(|| panic!("--{long} has no variable"));
            assert!(var.starts_with(environment::PREFIX), "--{long}: {var}");
            let doc = arg.get_help().map(ToString::to_string).unwrap_or_default();
            assert!(doc.trim().len() > 10, "--{long} has no doc");
            assert!(
                help.contains(&format!("--{long} ")),
                "--{long} not in --help"
            );
            assert!(
                help.contains(&format!("[env: {var}")),
                "{var} not in --help"
            );
            if id == "config" {
                continue; // the file itself, not a setting in it
            }
            flags += 1;
            let (_, path) = flag_settings
                .iter()
                .find(|(f, _)| *f == id)
                .unwrap_or_else(|| panic!("--{long} sets nothing: add it to flags_set!"));
            assert!(
                settings.iter().any(|s| &s.path() == path),
                "--{long} sets {path}, which is no key of the config file"
            );
        }
        assert_eq!(flags, flag_settings.len(), "flags_set! names a non-flag");
        assert!(flags >= 20, "{flags} flags");
        // The rule, and every key it applies to, by section.
        assert!(help.contains("VITALS_<SECTION>_<KEY>"), "{help}");
        for s in &settings {
            let head = match &s.section {
                _ if s.holds_entries() => s.variable.clone(),
                Some(sec) => format!("{}_<KEY>", environment::variable_for(sec)),
                None => "VITALS_<KEY>".to_owned(),
            };
            let block = help
                .split("\n\n")
                .find(|b| b.trim_start().starts_with(&head))
                .unwrap_or_else(|| panic!("no {head} in --help:\n{help}"));
            assert!(block.contains(&s.key), "{} not under {head}", s.key);
        }
    }

    #[test]
    fn an_error_names_every_place_its_setting_comes_from() {
        assert_eq!(
            setting_hint("hot_tier.window must be 1m to 1d"),
            " (set by --hot-window, VITALS_HOT_WINDOW, VITALS_HOT_TIER_WINDOW \
             or window in [hot_tier] of the config file)"
        );
        assert_eq!(
            setting_hint("defaults.down_error_rate must be a positive number"),
            " (set by VITALS_DEFAULTS_DOWN_ERROR_RATE or down_error_rate in [defaults] \
             of the config file)"
        );
        assert!(setting_hint("services.checkout.apdex_t_ms must be").contains("VITALS_SERVICES"));
        assert_eq!(setting_hint("something else"), "");
    }

    #[test]
    fn a_flags_own_variable_and_the_general_one_must_agree() {
        let env = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let err = check_variable_pairs(&env(&[
            ("VITALS_MAX_BODY_BYTES", "10"),
            ("VITALS_LIMITS_MAX_BODY_BYTES", "20"),
        ]))
        .expect_err("two values");
        let err = err.to_string();
        assert!(
            err.contains("VITALS_MAX_BODY_BYTES")
                && err.contains("VITALS_LIMITS_MAX_BODY_BYTES")
                && err.contains("--max-body-bytes"),
            "{err}"
        );
        assert!(
            check_variable_pairs(&env(&[
                ("VITALS_MAX_BODY_BYTES", "10"),
                ("VITALS_LIMITS_MAX_BODY_BYTES", "10"),
            ]))
            .is_ok()
        );
    }
}
