//! The environment as a configuration source. Every key of the TOML file
//! can also be set by a variable named after it: `VITALS_<SECTION>_<KEY>`
//! in upper case (`VITALS_LIMITS_MAX_ROUTES_PER_BATCH` for
//! `[limits] max_routes_per_batch`), `VITALS_<KEY>` for a top-level key
//! (`VITALS_STORE`). The per-service entries (`[services.NAME]`) are one
//! variable, `VITALS_SERVICES`, holding TOML: `checkout = { apdex_t_ms = 300 }`.
//!
//! The names are read from the configuration's own keys (its defaults,
//! serialized), so a key added to [`CollectorConfig`] gets its variable
//! without a line here. As in the file, a variable that names no key of
//! its section is an error, not silently ignored, and so is a value the
//! key cannot take; both errors name the variable.

use super::CollectorConfig;
pub use super::error::ConfigError;
use serde_json::Value as Json;
use toml::{Table, Value};

/// The prefix of every collector variable.
pub const PREFIX: &str = "VITALS_";

/// How a variable's text becomes a TOML value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A string key: the text as it is, no quotes needed.
    Text,
    /// A number, flag or optional key: the text read as a TOML value
    /// (`300`, `0.05`), else as a string (so the error says what was
    /// expected).
    Scalar,
    /// A table of named entries (`[services.NAME]`): TOML text.
    Entries,
}

/// One setting the environment can set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvSetting {
    /// Its `[section]` in the TOML file, `None` at the top level.
    pub section: Option<String>,
    /// Its key, like `max_routes_per_batch`, or the table's name
    /// (`services`) for a table of entries.
    pub key: String,
    /// The variable that sets it, like `VITALS_LIMITS_MAX_ROUTES_PER_BATCH`.
    pub variable: String,
    kind: Kind,
}

impl EnvSetting {
    /// The setting's dotted path, as error messages name it:
    /// `limits.max_count`, `store`.
    pub fn path(&self) -> String {
        match &self.section {
            Some(s) => format!("{s}.{}", self.key),
            None => self.key.clone(),
        }
    }

    /// Whether the variable holds a table of named entries in TOML
    /// (`VITALS_SERVICES`) rather than one value.
    pub fn holds_entries(&self) -> bool {
        self.kind == Kind::Entries
    }

    /// A TOML document holding just this setting with `value`.
    fn document(&self, value: Value) -> Table {
        let mut inner = Table::new();
        inner.insert(self.key.clone(), value);
        match &self.section {
            Some(s) => {
                let mut outer = Table::new();
                outer.insert(s.clone(), Value::Table(inner));
                outer
            }
            None => inner,
        }
    }

    /// The variable's text as the TOML value of this setting.
    fn value(&self, text: &str) -> Result<Value, String> {
        match self.kind {
            Kind::Text => Ok(Value::String(text.to_owned())),
            Kind::Scalar => Ok(text
                .parse::<Value>()
                .unwrap_or_else(|_| Value::String(text.to_owned()))),
            Kind::Entries => {
                // One inline table (`{ a = {…}, b = {…} }`) or TOML lines
                // (`a = {…}`), whichever the text is.
                let table = if text.trim_start().starts_with('{') {
                    match text.parse::<Value>() {
                        Ok(Value::Table(t)) => Ok(t),
                        Ok(_) => Err("not a table".to_owned()),
                        Err(e) => Err(e.to_string()),
                    }
                } else {
                    text.parse::<Table>().map_err(|e| e.to_string())
                };
                table.map(Value::Table).map_err(|e| {
                    format!(
                        "is not TOML entries like 'NAME = {{ apdex_t_ms = 300 }}': {}",
                        e.trim_end()
                    )
                })
            }
        }
    }
}

/// The variable of a setting given by its dotted path:
/// `hot_tier.window` → `VITALS_HOT_TIER_WINDOW`.
pub fn variable_for(path: &str) -> String {
    format!("{PREFIX}{}", path.replace('.', "_").to_ascii_uppercase())
}

/// Every setting the environment can set, read from the configuration's
/// keys: top-level keys, then each section's, in the order serialization
/// gives them.
pub fn settings() -> Vec<EnvSetting> {
    let kind_of = |v: &Json| match v {
        Json::String(_) => Kind::Text,
        Json::Object(_) => Kind::Entries,
        _ => Kind::Scalar,
    };
    let make = |section: Option<&str>, key: &str, kind| {
        let path = match section {
            Some(s) => format!("{s}.{key}"),
            None => key.to_owned(),
        };
        EnvSetting {
            section: section.map(str::to_owned),
            key: key.to_owned(),
            variable: variable_for(&path),
            kind,
        }
    };
    // The defaults serialize without failing (plain strings, numbers and
    // maps); an empty list would only disable the variables, and the
    // tests below would fail.
    let Ok(Json::Object(top)) = serde_json::to_value(CollectorConfig::default()) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (key, default) in &top {
        match default {
            // A struct section always has keys; an empty object is a map
            // of named entries, like `services`.
            Json::Object(fields) if !fields.is_empty() => {
                for (field, value) in fields {
                    out.push(make(Some(key), field, kind_of(value)));
                }
            }
            other => out.push(make(None, key, kind_of(other))),
        }
    }
    out
}

/// What `name` means: not a collector setting (`None`: other `VITALS_…`
/// variables belong to other commands and tests), a setting, or a
/// mistake within a section's names (a typo), with what to do.
fn resolve<'s>(settings: &'s [EnvSetting], name: &str) -> Option<Result<&'s EnvSetting, String>> {
    if let Some(s) = settings.iter().find(|s| s.variable == name) {
        return Some(Ok(s));
    }
    let section = settings
        .iter()
        .filter_map(|s| s.section.as_deref())
        .filter(|sec| {
            let whole = variable_for(sec);
            name == whole || name.starts_with(&format!("{whole}_"))
        })
        .max_by_key(|sec| sec.len());
    if let Some(sec) = section {
        let keys: Vec<&str> = settings
            .iter()
            .filter(|s| s.section.as_deref() == Some(sec))
            .map(|s| s.key.as_str())
            .collect();
        let whole = variable_for(sec);
        let problem = match name.strip_prefix(&format!("{whole}_")) {
            Some(key) => format!(
                "[{sec}] has no key {:?} (a typo?); its keys are {}, each set by {whole}_<KEY>",
                key.to_ascii_lowercase(),
                keys.join(", ")
            ),
            None => format!(
                "[{sec}] is a section, not a setting: set its keys one by one, as {whole}_<KEY> \
                 for a key among {}",
                keys.join(", ")
            ),
        };
        return Some(Err(problem));
    }
    settings
        .iter()
        .find(|s| s.holds_entries() && name.starts_with(&format!("{}_", s.variable)))
        .map(|s| {
            Err(format!(
                "[{key}.NAME] entries are not set one variable each: put them all in {var}, as \
                 TOML like {var}='NAME = {{ apdex_t_ms = 300 }}'",
                key = s.key,
                var = s.variable
            ))
        })
}

/// Puts `from` over `into`, table by table, so a variable replaces only
/// the keys it sets (a `VITALS_SERVICES` entry keeps the file's other
/// keys of that service).
fn merge(into: &mut Table, from: Table) {
    for (key, value) in from {
        match (into.get_mut(&key), value) {
            (Some(Value::Table(old)), Value::Table(new)) => merge(old, new),
            (_, value) => {
                into.insert(key, value);
            }
        }
    }
}

impl CollectorConfig {
    /// Reads a TOML document (empty for none) with the `VITALS_…`
    /// variables among `env` on top of it; variables that name no
    /// collector setting and are outside its sections' names are
    /// ignored. Not yet [validated](Self::validate): flags still go on
    /// top, and the result is checked after them.
    ///
    /// ```
    /// use vitals_collector::CollectorConfig;
    /// let env = [
    ///     ("VITALS_LIMITS_MAX_ROUTES_PER_BATCH".to_string(), "500".to_string()),
    ///     ("VITALS_SERVICES".to_string(), "checkout = { apdex_t_ms = 300 }".to_string()),
    /// ];
    /// let c = CollectorConfig::from_toml_and_env("[limits]\nmax_routes_per_batch = 900", env)
    ///     .expect("valid");
    /// assert_eq!(c.limits.max_routes_per_batch, 500);
    /// assert_eq!(c.policy("checkout").apdex_t_ms, 300.0);
    /// ```
    pub fn from_toml_and_env<I>(text: &str, env: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = (String, String)>,
    {
        // The file alone first, for its own error messages (with lines).
        toml::from_str::<CollectorConfig>(text).map_err(|e| ConfigError::File(e.to_string()))?;
        let mut doc: Table = text
            .parse()
            .map_err(|e: toml::de::Error| ConfigError::File(e.to_string()))?;
        let settings = settings();
        let mut vars: Vec<(String, String)> = env
            .into_iter()
            .filter(|(name, _)| name.starts_with(PREFIX))
            .collect();
        vars.sort();
        for (name, text) in vars {
            let Some(found) = resolve(&settings, &name) else {
                continue;
            };
            let fail = |problem: String| ConfigError::Variable {
                variable: name.clone(),
                problem,
            };
            let setting = found.map_err(fail)?;
            let part = setting.document(setting.value(&text).map_err(fail)?);
            // Each variable alone, so an error is about this one.
            if let Err(e) = part.clone().try_into::<CollectorConfig>() {
                // toml ends with a line naming the key; keep one line.
                return Err(fail(e.to_string().trim_end().replace('\n', " ")));
            }
            merge(&mut doc, part);
        }
        doc.try_into()
            .map_err(|e| ConfigError::File(format!("with the environment: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn every_key_of_every_section_has_a_variable() {
        let vars: Vec<String> = settings().into_iter().map(|s| s.variable).collect();
        for want in [
            "VITALS_LISTEN",
            "VITALS_STORE",
            "VITALS_CACHE",
            "VITALS_ROLLUP_INTERVAL_SECS",
            "VITALS_LIMITS_MAX_ROUTES_PER_BATCH",
            "VITALS_LIMITS_MAX_FUTURE_MS",
            "VITALS_DEFAULTS_DEGRADED_ERROR_RATE",
            "VITALS_DEFAULTS_STALE_AFTER_SECS",
            "VITALS_RETENTION_MINUTE",
            "VITALS_HOT_TIER_FLUSH_GRACE",
            "VITALS_SERVICES",
        ] {
            assert!(vars.iter().any(|v| v == want), "{want} missing: {vars:?}");
        }
        // Derived from the keys: as many variables as the file has
        // settings (every limit, every policy field, …).
        let c = serde_json::to_value(CollectorConfig::default()).expect("serializes");
        let limits = c["limits"].as_object().map_or(0, |m| m.len());
        assert_eq!(
            vars.iter()
                .filter(|v| v.starts_with("VITALS_LIMITS_"))
                .count(),
            limits
        );
        assert_eq!(limits, 17);
    }

    #[test]
    fn variables_go_over_the_file_typed_by_their_key() {
        let c = CollectorConfig::from_toml_and_env(
            r#"
            store = "sqlite://file.db"
            [limits]
            max_routes_per_batch = 900
            max_count = 7
            [defaults]
            degraded_error_rate = 0.2
            [services.checkout]
            apdex_t_ms = 200.0
            stale_after_secs = 60
            "#,
            env(&[
                ("VITALS_LIMITS_MAX_ROUTES_PER_BATCH", "500"),
                ("VITALS_DEFAULTS_DEGRADED_ERROR_RATE", "0.1"),
                ("VITALS_DEFAULTS_APDEX_T_MS", "250"),
                ("VITALS_RETENTION_MINUTE", "3d"),
                ("VITALS_HOT_TIER_RECENT_SAMPLES", "7"),
                ("VITALS_ROLLUP_INTERVAL_SECS", "2"),
                (
                    "VITALS_SERVICES",
                    "{ checkout = { apdex_t_ms = 300 }, search = { objective_p95_ms = 800 } }",
                ),
                // Not collector settings: left alone.
                ("VITALS_TEST_POSTGRES", "postgres://x"),
                ("VITALS_HOT_WINDOW", "whatever"),
                ("OTHER_LIMITS_MAX_COUNT", "x"),
            ]),
        )
        .expect("valid");
        assert_eq!(c.store, "sqlite://file.db");
        assert_eq!(c.limits.max_routes_per_batch, 500);
        assert_eq!(c.limits.max_count, 7, "the file's other keys stay");
        assert_eq!(c.defaults.degraded_error_rate, Some(0.1));
        assert_eq!(c.defaults.apdex_t_ms, Some(250.0), "an integer for a float");
        assert_eq!(c.retention.minute, "3d");
        assert_eq!(c.hot_tier.recent_samples, 7);
        assert_eq!(c.rollup_interval_secs, 2);
        let checkout = c.policy("checkout");
        assert_eq!(checkout.apdex_t_ms, 300.0);
        assert_eq!(checkout.stale_after_secs, 60, "merged key by key");
        assert_eq!(c.policy("search").objective_p95_ms, 800.0);
        assert_eq!(c.policy("other").apdex_t_ms, 250.0);
        // The line form of VITALS_SERVICES.
        let c = CollectorConfig::from_toml_and_env(
            "",
            env(&[("VITALS_SERVICES", "checkout = { apdex_t_ms = 300 }")]),
        )
        .expect("valid");
        assert_eq!(c.policy("checkout").apdex_t_ms, 300.0);
    }

    #[test]
    fn typos_and_bad_values_name_the_variable() {
        for (pairs, want) in [
            (
                &[("VITALS_LIMITS_MAX_ROUTES_PER_BATHC", "5")][..],
                &[
                    "VITALS_LIMITS_MAX_ROUTES_PER_BATHC:",
                    "\"max_routes_per_bathc\"",
                    "max_routes_per_batch",
                    "max_future_ms",
                ][..],
            ),
            (
                &[("VITALS_LIMITS", "5")],
                &["VITALS_LIMITS:", "is a section", "max_count"],
            ),
            (
                &[("VITALS_LIMITS_MAX_COUNT", "lots")],
                &["VITALS_LIMITS_MAX_COUNT:", "limits.max_count", "lots"],
            ),
            (
                &[("VITALS_LIMITS_MAX_COUNT", "-1")],
                &["VITALS_LIMITS_MAX_COUNT:", "-1"],
            ),
            (
                &[("VITALS_DEFAULTS_DOWN_ERROR_RATE", "half")],
                &[
                    "VITALS_DEFAULTS_DOWN_ERROR_RATE:",
                    "defaults.down_error_rate",
                ],
            ),
            (
                &[("VITALS_HOT_TIER_WINDW", "5m")],
                &["VITALS_HOT_TIER_WINDW:", "[hot_tier]", "window"],
            ),
            (
                &[("VITALS_SERVICES", "checkout = { apdex = 3 }")],
                &["VITALS_SERVICES:", "apdex"],
            ),
            (
                &[("VITALS_SERVICES", "checkout = {")],
                &["VITALS_SERVICES:", "TOML"],
            ),
            (
                &[("VITALS_SERVICES_CHECKOUT_APDEX_T_MS", "300")],
                &["VITALS_SERVICES_CHECKOUT_APDEX_T_MS:", "VITALS_SERVICES='"],
            ),
        ] {
            let err = CollectorConfig::from_toml_and_env("", env(pairs))
                .expect_err(&format!("{pairs:?}"))
                .to_string();
            for w in want {
                assert!(err.contains(w), "{pairs:?}: {w:?} not in {err}");
            }
        }
        // A file error stays a file error.
        let err = CollectorConfig::from_toml_and_env("listne = 1", env(&[]))
            .expect_err("typo in the file");
        assert!(
            matches!(&err, ConfigError::File(m) if m.contains("listne")),
            "{err}"
        );
    }

    #[test]
    fn alerting_rules_and_receivers_come_from_variables_too() {
        let vars: Vec<String> = settings().into_iter().map(|s| s.variable).collect();
        for want in [
            "VITALS_ALERTING_INTERVAL",
            "VITALS_ALERTING_HEALTH_RULE",
            "VITALS_ALERTING_RULES",
            "VITALS_ALERTING_WEBHOOK",
            "VITALS_ALERTING_ALERTMANAGER",
            "VITALS_ALERTING_GROUP_WAIT",
        ] {
            assert!(vars.iter().any(|v| v == want), "{want} missing: {vars:?}");
        }
        let c = CollectorConfig::from_toml_and_env(
            "[alerting]\ninterval = \"30s\"",
            env(&[
                ("VITALS_ALERTING_INTERVAL", "5s"),
                ("VITALS_ALERTING_HEALTH_RULE", "false"),
                (
                    "VITALS_ALERTING_RULES",
                    r#"[{ tenant = "acme", name = "errors", service = "checkout", signal = "error_rate", op = ">", threshold = 0.05, for = "2m" }]"#,
                ),
                (
                    "VITALS_ALERTING_WEBHOOK",
                    r#"[{ name = "ops", url = "http://hooks.example/x" }]"#,
                ),
                (
                    "VITALS_ALERTING_ALERTMANAGER",
                    r#"{ url = "http://127.0.0.1:9093" }"#,
                ),
            ]),
        )
        .expect("valid");
        let a = c.alerting_settings().expect("checks");
        assert_eq!(a.interval_ms, 5_000);
        assert!(!a.health_rule);
        assert_eq!(a.rules.len(), 1);
        assert_eq!(
            (a.rules[0].name.as_str(), a.rules[0].for_ms),
            ("errors", 120_000)
        );
        assert_eq!(a.webhooks[0].name, "ops");
        assert_eq!(
            a.alertmanager.map(|m| m.url),
            Some("http://127.0.0.1:9093".to_string())
        );
        // A rule that does not check names its place.
        let c = CollectorConfig::from_toml_and_env(
            "",
            env(&[(
                "VITALS_ALERTING_RULES",
                r#"[{ tenant = "acme", name = "x", service = "s", signal = "cpu", op = ">", threshold = 1 }]"#,
            )]),
        )
        .expect("reads");
        let err = c.validate().expect_err("unknown signal");
        assert!(
            err.contains("alerting.rules[0]") && err.contains("cpu"),
            "{err}"
        );
        let err = CollectorConfig::from_toml_and_env(
            "",
            env(&[("VITALS_ALERTING_WEBHOOK", r#"[{ url = "http://x" }]"#)]),
        )
        .expect_err("a webhook needs a name");
        assert!(err.to_string().contains("VITALS_ALERTING_WEBHOOK"), "{err}");
    }

    #[test]
    fn text_values_are_never_repeated_in_errors() {
        let err = CollectorConfig::from_toml_and_env(
            "",
            env(&[
                ("VITALS_STORE", "postgres://u:hunter2@h/db"),
                ("VITALS_LIMITS_MAX_COUNTT", "5"),
            ]),
        )
        .expect_err("typo");
        assert!(!err.to_string().contains("hunter2"), "{err}");
        let c = CollectorConfig::from_toml_and_env(
            "",
            env(&[("VITALS_STORE", "postgres://u:hunter2@h/db")]),
        )
        .expect("any text is a URL until it is opened");
        assert_eq!(c.store, "postgres://u:hunter2@h/db");
    }

    #[test]
    fn remote_write_tables_parse_and_are_checked() {
        let c = CollectorConfig::from_toml(
            r#"
            [[remote_write]]
            url = "http://mimir:9009/api/v1/push"
            tenants = ["acme"]
            tenant_header = "X-Scope-OrgID"
            [[remote_write]]
            url = "https://vm:8428/api/v1/write"
            name = "vm"
            tenants = ["acme", "beta"]
            headers = { Authorization = "Bearer x" }
            "#,
        )
        .expect("valid");
        assert_eq!(c.remote_write.len(), 2);
        let t = c.remote_write[0].resolve(0).expect("resolves");
        assert_eq!(t.config.name, "remote0");
        assert_eq!(t.delay_ms, 60_000);
        assert_eq!(
            t.queue_dir,
            std::path::PathBuf::from("vitals-remote-write/remote0")
        );
        for (toml, want) in [
            (
                "url = \"ftp://x\"\ntenants = [\"a\"]",
                "http:// or https://",
            ),
            ("url = \"http://x\"", "tenants must name"),
            (
                "url = \"http://x\"\ntenants = [\"a\"]\nname = \"a/b\"",
                "name must be",
            ),
            (
                "url = \"http://x\"\ntenants = [\"a\"]\ntenant_header = \"bad header\"",
                "not a valid header name",
            ),
            (
                "url = \"http://x\"\ntenants = [\"a\"]\nbuckets = [1.0, 0.5]",
                "increasing",
            ),
            (
                "url = \"http://x\"\ntenants = [\"a\"]\ndelay = \"0s\"",
                "delay",
            ),
            ("url = \"http://x\"\ntenants = [\"a\"]\nurll = 1", "urll"),
        ] {
            let err =
                CollectorConfig::from_toml(&format!("[[remote_write]]\n{toml}")).expect_err(toml);
            assert!(err.contains(want), "{toml}: {err}");
        }
    }

    #[test]
    fn remote_write_is_set_by_one_variable_holding_toml() {
        let env = [(
            "VITALS_REMOTE_WRITE".to_string(),
            r#"[{ url = "http://127.0.0.1:9090/api/v1/write", tenants = ["acme"] }]"#.to_string(),
        )];
        let c = CollectorConfig::from_toml_and_env("", env).expect("valid");
        assert_eq!(c.remote_write.len(), 1);
        assert_eq!(c.remote_write[0].tenants, vec!["acme".to_string()]);
        c.validate().expect("checks");
    }
}
