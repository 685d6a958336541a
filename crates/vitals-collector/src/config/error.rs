//! Why the file and the environment do not make a configuration: the
//! error of [`CollectorConfig::from_toml_and_env`](super::CollectorConfig::from_toml_and_env).
//! Its own file so the configuration (`mod.rs`) and the environment reader
//! both import it from below.

/// Why the file and the environment do not make a configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The TOML file is not a configuration (syntax, unknown key, type).
    #[error("{0}")]
    File(String),
    /// A `VITALS_…` variable names no setting, or holds a value its
    /// setting cannot take. Only a value that is not what a number or
    /// table key wants is repeated; a text setting's (a URL may hold a
    /// password) never is.
    #[error("{variable}: {problem}")]
    Variable {
        /// The variable, like `VITALS_LIMITS_MAX_COUNT`.
        variable: String,
        /// What is wrong with it and what to do.
        problem: String,
    },
}
