//! A YAML mapping read key by key, every error naming its key.

use std::time::Duration;

use serde_yaml_ng::{Mapping, Value};

use super::*;

/// One mapping of the configuration with typed getters whose errors name the
/// full key (`config.http_config.idle_conn_timeout`).
pub(super) struct Section<'a> {
    path: String,
    map: &'a Mapping,
}

impl<'a> Section<'a> {
    pub(super) fn new(path: &str, map: &'a Mapping) -> Self {
        Section {
            path: path.to_string(),
            map,
        }
    }

    pub(super) fn key(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    /// The value, with an explicit `null` treated as absent.
    pub(super) fn get(&self, key: &str) -> Option<&'a Value> {
        match self.map.get(key) {
            None | Some(Value::Null) => None,
            Some(v) => Some(v),
        }
    }

    /// Whether the key is set to something other than its zero value: null,
    /// `false`, `""`, 0, or a list or mapping of only such values.
    pub(super) fn has_effective_value(&self, key: &str) -> bool {
        self.get(key).is_some_and(is_effective)
    }

    /// The warning for a key that is accepted but does nothing here.
    pub(super) fn ignored(&self, key: &str) -> String {
        format!(
            "`{}` is accepted but has no effect in this build",
            self.key(key)
        )
    }

    /// A warning for each of `keys` that is set to an effective value.
    pub(super) fn warn_ignored(&self, keys: &[&str], warnings: &mut Vec<String>) {
        for key in keys {
            if self.has_effective_value(key) {
                warnings.push(self.ignored(key));
            }
        }
    }

    /// Strings; numbers and booleans are taken as written, as Go's YAML
    /// decoder does for string fields.
    pub(super) fn string(&self, key: &str) -> Result<Option<String>, ConfigError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(Value::Bool(b)) => Ok(Some(b.to_string())),
            Some(other) => Err(ConfigError::invalid(
                self.key(key),
                format!("must be a string, not {}", kind_of(other)),
            )),
        }
    }

    pub(super) fn required_string(&self, key: &str) -> Result<String, ConfigError> {
        match self.string(key)? {
            Some(s) if !s.trim().is_empty() => Ok(s),
            _ => Err(ConfigError::MissingKey { key: self.key(key) }),
        }
    }

    /// A string that is a credential: type errors do not echo it.
    pub(super) fn secret(&self, key: &str) -> Result<Option<Secret>, ConfigError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::String(s)) => Ok(Some(Secret(s.clone()))),
            Some(Value::Number(n)) => Ok(Some(Secret(n.to_string()))),
            Some(other) => Err(ConfigError::invalid(
                self.key(key),
                format!("must be a string, not {}", kind_of(other)),
            )),
        }
    }

    pub(super) fn bool(&self, key: &str) -> Result<Option<bool>, ConfigError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(Value::String(s)) => Err(ConfigError::invalid(
                self.key(key),
                format!("must be a boolean (true or false), not the string {s:?}"),
            )),
            Some(other) => Err(ConfigError::invalid(
                self.key(key),
                format!("must be a boolean (true or false), not {}", kind_of(other)),
            )),
        }
    }

    pub(super) fn u64(&self, key: &str) -> Result<Option<u64>, ConfigError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Number(n)) => n.as_u64().map(Some).ok_or_else(|| {
                ConfigError::invalid(
                    self.key(key),
                    format!("must be a non-negative integer, not {n}"),
                )
            }),
            Some(other) => Err(ConfigError::invalid(
                self.key(key),
                format!("must be a non-negative integer, not {}", kind_of(other)),
            )),
        }
    }

    pub(super) fn usize(&self, key: &str) -> Result<Option<usize>, ConfigError> {
        self.u64(key)?
            .map(|n| {
                usize::try_from(n)
                    .map_err(|_| ConfigError::invalid(self.key(key), format!("is too large: {n}")))
            })
            .transpose()
    }

    /// Prometheus-style durations (`90s`, `1m30s`, `2h`).
    pub(super) fn duration(&self, key: &str) -> Result<Option<Duration>, ConfigError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => parse_duration(s).map(Some).map_err(|e| {
                ConfigError::invalid(self.key(key), format!("is not a duration ({e}): {s:?}"))
            }),
            Some(other) => Err(ConfigError::invalid(
                self.key(key),
                format!(
                    "must be a duration string such as \"90s\", not {}",
                    kind_of(other)
                ),
            )),
        }
    }

    pub(super) fn section(&self, key: &str) -> Result<Option<Section<'a>>, ConfigError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Mapping(m)) => Ok(Some(Section {
                path: self.key(key),
                map: m,
            })),
            Some(other) => Err(ConfigError::invalid(
                self.key(key),
                format!("must be a mapping, not {}", kind_of(other)),
            )),
        }
    }

    /// Adds a warning for every key not in `known`.
    pub(super) fn unknown_keys(&self, known: &[&str], warnings: &mut Vec<String>) {
        for k in self.map.keys() {
            let name = match k {
                Value::String(s) => s.clone(),
                other => format!("{other:?}"),
            };
            if !known.contains(&name.as_str()) {
                warnings.push(format!("unknown key `{}` ignored", self.key(&name)));
            }
        }
    }
}
