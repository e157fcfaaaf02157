//! Reading one value: the settings map, the errors and warnings, and the value parsers.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::time::Duration;

use thiserror::Error;

/// A setting has a value that cannot be used. Dynamo panics (or fails startup) on these; the
/// message names the variable and the value, e.g. `DYN_TCP_RPC_PORT: 'abc' is not a port number`.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{var}: '{value}' {problem}")]
#[non_exhaustive]
pub struct ConfigError {
    /// The variable, as spelled in [`super::vars`].
    pub var: &'static str,
    /// Its value as given (whitespace trimmed).
    pub value: String,
    /// What is wrong with it.
    pub problem: Problem,
}

/// What is wrong with a value. Displayed after the value, so it reads as a sentence.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum Problem {
    /// Not an integer in 0..=65535.
    #[error("is not a port number")]
    NotAPort,
    /// Not -1 (or another negative number: disabled), 0 (any free port) or a port number.
    #[error("is not a port number (use -1 to disable, 0 for any free port)")]
    NotASystemPort,
    /// Not a whole, non-negative number of seconds.
    #[error("is not a whole number of seconds")]
    NotSeconds,
    /// Not a whole, non-negative number of bytes.
    #[error("is not a whole number of bytes")]
    NotBytes,
    /// Zero where at least one is needed.
    #[error("must be at least 1")]
    Zero,
    /// Not one of the boolean spellings.
    #[error("is not a boolean (use 1/true/on/yes or 0/false/off/no)")]
    NotABool,
    /// Not one of a fixed set of names (compared without regard to case).
    #[error("is not one of: {0}")]
    NotOneOf(&'static str),
    /// A NATS URL must say which scheme it uses.
    #[error("does not start with 'nats://' or 'tls://'")]
    NotANatsUrl,
    /// TLS files are configured, so every NATS URL must use the `tls://` scheme.
    #[error("does not use the 'tls://' scheme, but NATS TLS files are configured")]
    NotATlsUrl,
    /// Set without the variable it goes with.
    #[error("is set without {0}")]
    Needs(&'static str),
    /// Not a NATS user nkey seed.
    #[error("is not a NATS user nkey seed (one starts with 'SU')")]
    NotANKeySeed,
    /// A valid value that asks for something dynrt does not do, and what to do instead.
    #[error("is not supported: {0}")]
    NotSupported(&'static str),
    /// A comma-separated list with an empty entry (`a,,b`, or a trailing comma).
    #[error("has an empty entry")]
    EmptyListEntry,
    /// An HTTP route must be absolute.
    #[error("does not start with '/'")]
    NotAPath,
    /// Not a bracketed list.
    #[error("is not a list (write [\"a\", \"b\"])")]
    NotAList,
    /// Not valid UTF-8 (the value shown has the bad bytes replaced by U+FFFD).
    #[error("is not valid UTF-8")]
    NotUnicode,
    /// A number of bytes below what the protocol needs.
    #[error("is below the minimum of {0} bytes (what a connection handshake needs)")]
    BelowMinimumBytes(u64),
    /// Below the smallest value that works, in the unit given, and why.
    #[error("is below the minimum of {min} {unit} ({why})")]
    BelowMinimum {
        /// The smallest value accepted.
        min: u64,
        /// `bytes`, `seconds`, `connections`…
        unit: &'static str,
        /// What a smaller value would break.
        why: &'static str,
    },
    /// Above the largest value accepted, in the unit given.
    #[error("is above the maximum of {max} {unit}")]
    AboveMaximum {
        /// The largest value accepted.
        max: u64,
        /// `bytes`, `seconds`, `connections`…
        unit: &'static str,
    },
    /// Not a whole, non-negative number.
    #[error("is not a whole number")]
    NotANumber,
    /// Not an IP address. dynrt binds and advertises addresses; it resolves neither host
    /// names nor interface names.
    #[error("is not an IP address (host and interface names are not resolved)")]
    NotAnIpAddress,
    /// Not `xsub=<urls> , xpub=<urls>`; says which part is wrong.
    #[error("{0}")]
    NotABrokerUrl(&'static str),
    /// An IP address that cannot be bound and advertised (multicast, broadcast).
    #[error("is not a unicast address")]
    NotUnicast,
}

/// A value that was not used, or a setting that should be changed; the configuration is still
/// valid. The adapters log these at startup.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ConfigWarning {
    /// The value is invalid and, as Dynamo does for this variable, the default is used instead.
    #[error("{var}: '{value}' {problem}; using the default, {default}")]
    FellBack {
        /// The variable.
        var: &'static str,
        /// Its value as given (trimmed).
        value: String,
        /// What is wrong with it.
        problem: Problem,
        /// The value used instead, for display.
        default: String,
    },
    /// The variable is deprecated.
    #[error("{var} is deprecated: {advice}")]
    Deprecated {
        /// The variable.
        var: &'static str,
        /// What to do instead.
        advice: &'static str,
    },
    /// The value is valid, but what it selects is not implemented in dynrt yet, so it has no
    /// effect (a setting must never be ignored silently).
    #[error("{var}: '{value}' has no effect: {what}")]
    NotImplemented {
        /// The variable.
        var: &'static str,
        /// Its value as given (trimmed).
        value: String,
        /// What is missing, and what happens instead.
        what: &'static str,
    },
}

/// The key→value map, with the lookup rules every variable shares.
pub(super) struct Settings {
    /// Values that are valid UTF-8, by key.
    map: BTreeMap<String, String>,
    /// Keys whose value is not UTF-8, with the value made displayable.
    not_unicode: BTreeMap<String, String>,
}

impl Settings {
    /// Takes the process environment as it is (`std::env::vars_os()`): a key that is not
    /// UTF-8 cannot be one of ours and is skipped; a value that is not UTF-8 is remembered, and
    /// is an error only if its key is one we read ([`Self::first_not_unicode`]).
    pub(super) fn new<I, K, V>(settings: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<OsStr>,
        V: AsRef<OsStr>,
    {
        let mut map = BTreeMap::new();
        let mut not_unicode = BTreeMap::new();
        for (key, value) in settings {
            let Some(key) = key.as_ref().to_str() else {
                continue;
            };
            let value = value.as_ref();
            // The last duplicate wins, whichever kind of value it has.
            match value.to_str() {
                Some(v) => {
                    not_unicode.remove(key);
                    map.insert(key.to_owned(), v.to_owned());
                }
                None => {
                    map.remove(key);
                    not_unicode.insert(key.to_owned(), value.to_string_lossy().into_owned());
                }
            }
        }
        Self { map, not_unicode }
    }

    /// The first of `vars` whose value is not UTF-8, as an error.
    pub(super) fn first_not_unicode(&self, vars: &[&'static str]) -> Result<(), ConfigError> {
        match vars
            .iter()
            .find_map(|var| Some((*var, self.not_unicode.get(*var)?)))
        {
            None => Ok(()),
            Some((var, value)) => Err(ConfigError {
                var,
                value: value.clone(),
                problem: Problem::NotUnicode,
            }),
        }
    }

    /// The trimmed value, `None` when absent or empty (empty counts as unset).
    pub(super) fn get(&self, var: &'static str) -> Option<&str> {
        self.present(var).filter(|v| !v.is_empty())
    }

    /// The trimmed value, `Some("")` when present but empty: for the few variables where Dynamo
    /// rejects an empty value instead of treating it as unset.
    pub(super) fn present(&self, var: &'static str) -> Option<&str> {
        self.map.get(var).map(|v| v.trim())
    }

    pub(super) fn error(&self, var: &'static str, problem: Problem) -> ConfigError {
        ConfigError {
            var,
            value: self.present(var).unwrap_or_default().to_owned(),
            problem,
        }
    }

    /// A port number; 0 means "any free port".
    pub(super) fn port(&self, var: &'static str, default: u16) -> Result<u16, ConfigError> {
        match self.get(var) {
            None => Ok(default),
            Some(v) => v.parse().map_err(|_| self.error(var, Problem::NotAPort)),
        }
    }

    pub(super) fn seconds(
        &self,
        var: &'static str,
        default: Duration,
    ) -> Result<Duration, ConfigError> {
        match self.get(var) {
            None => Ok(default),
            Some(v) => v
                .parse()
                .map(Duration::from_secs)
                .map_err(|_| self.error(var, Problem::NotSeconds)),
        }
    }

    /// A whole number of at least 1 (`not_a_number` when it is not a number at all).
    pub(super) fn positive(
        &self,
        var: &'static str,
        default: u64,
        not_a_number: Problem,
    ) -> Result<u64, ConfigError> {
        match self.get(var) {
            None => Ok(default),
            Some(v) => match v.parse::<u64>() {
                Ok(0) => Err(self.error(var, Problem::Zero)),
                Ok(n) => Ok(n),
                Err(_) => Err(self.error(var, not_a_number)),
            },
        }
    }

    /// A whole number of seconds, at least 1 (a zero timer would make its connection spin or
    /// fail at once) and at most [`MAX_TIMEOUT_SECS`] (a deadline that far away is no deadline,
    /// and adding it to a clock could overflow).
    pub(super) fn timeout(
        &self,
        var: &'static str,
        default: Duration,
    ) -> Result<Duration, ConfigError> {
        let secs = self.positive(var, default.as_secs(), Problem::NotSeconds)?;
        if secs > MAX_TIMEOUT_SECS {
            return Err(self.error(
                var,
                Problem::AboveMaximum {
                    max: MAX_TIMEOUT_SECS,
                    unit: "seconds",
                },
            ));
        }
        Ok(Duration::from_secs(secs))
    }

    pub(super) fn bool(&self, var: &'static str, default: bool) -> Result<bool, ConfigError> {
        match self.get(var) {
            None => Ok(default),
            Some(v) => parse_bool(v).ok_or_else(|| self.error(var, Problem::NotABool)),
        }
    }

    /// A plain string; `None` when unset or empty.
    pub(super) fn string(&self, var: &'static str) -> Option<String> {
        self.get(var).map(str::to_owned)
    }

    /// An absolute HTTP path.
    pub(super) fn path(&self, var: &'static str, default: &str) -> Result<String, ConfigError> {
        match self.get(var) {
            None => Ok(default.to_owned()),
            Some(v) if v.starts_with('/') => Ok(v.to_owned()),
            Some(_) => Err(self.error(var, Problem::NotAPath)),
        }
    }

    /// Dynamo's warn-and-fall-back rule for a positive integer (`ETCD_LEASE_TTL`,
    /// `DYN_TCP_MAX_MESSAGE_SIZE`).
    pub(super) fn positive_or_default(
        &self,
        var: &'static str,
        default: u64,
        not_a_number: Problem,
        shown_default: impl FnOnce() -> String,
        warnings: &mut Vec<ConfigWarning>,
    ) -> u64 {
        let Some(v) = self.get(var) else {
            return default;
        };
        let problem = match v.parse::<u64>() {
            Ok(0) => Problem::Zero,
            Ok(n) => return n,
            Err(_) => not_a_number,
        };
        warnings.push(ConfigWarning::FellBack {
            var,
            value: v.to_owned(),
            problem,
            default: shown_default(),
        });
        default
    }
}

/// The longest timeout the limit settings accept: one year.
pub(super) const MAX_TIMEOUT_SECS: u64 = 365 * 24 * 60 * 60;

/// Dynamo's boolean spellings (`dynamo-truthy`): `1/true/on/yes` and `0/false/off/no`, any case.
pub(super) fn parse_bool(value: &str) -> Option<bool> {
    const TRUE: [&str; 4] = ["1", "true", "on", "yes"];
    const FALSE: [&str; 4] = ["0", "false", "off", "no"];
    let value = value.trim();
    if TRUE.iter().any(|t| value.eq_ignore_ascii_case(t)) {
        Some(true)
    } else if FALSE.iter().any(|f| value.eq_ignore_ascii_case(f)) {
        Some(false)
    } else {
        None
    }
}

/// A bracketed list as figment reads it: `["a", "b"]`, `[a, b]` or `[]`.
pub(super) fn parse_list(value: &str) -> Option<Vec<String>> {
    let inner = value.strip_prefix('[')?.strip_suffix(']')?.trim();
    if inner.is_empty() {
        return Some(Vec::new());
    }
    inner
        .split(',')
        .map(|item| {
            let item = item.trim();
            let item = item
                .strip_prefix('"')
                .and_then(|i| i.strip_suffix('"'))
                .unwrap_or(item);
            (!item.is_empty()).then(|| item.to_owned())
        })
        .collect()
}
