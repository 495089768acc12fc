//! Reading variables: one way to parse every kind of value, each error naming its variable.

use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

/// The variables configuration is read from; an empty value counts as unset.
pub(crate) struct Vars<'a>(pub &'a HashMap<String, String>);

impl<'a> Vars<'a> {
    pub fn get(&self, name: &str) -> Option<&'a str> {
        self.0
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// The variable parsed, or `default` when unset.
    pub fn or<T>(&self, name: &'static str, default: T) -> Result<T, ConfigError>
    where
        T: FromStr,
        T::Err: std::fmt::Display,
    {
        self.get(name)
            .map_or(Ok(default), |value| parse(name, value))
    }

    /// The variable parsed when set.
    pub fn optional<T>(&self, name: &'static str) -> Result<Option<T>, ConfigError>
    where
        T: FromStr,
        T::Err: std::fmt::Display,
    {
        self.get(name).map(|value| parse(name, value)).transpose()
    }

    /// Like [`Vars::or`], refusing zero (and below).
    pub fn positive<T>(&self, name: &'static str, default: T) -> Result<T, ConfigError>
    where
        T: FromStr + PartialOrd + Default + ToString,
        T::Err: std::fmt::Display,
    {
        let value = self.or(name, default)?;
        if value <= T::default() {
            return Err(ConfigError::Invalid {
                name,
                value: value.to_string(),
                reason: "must be greater than zero".into(),
            });
        }
        Ok(value)
    }

    /// Whole seconds, more than zero.
    pub fn seconds(&self, name: &'static str, default: u64) -> Result<Duration, ConfigError> {
        self.positive(name, default).map(Duration::from_secs)
    }

    /// Whole milliseconds, more than zero.
    pub fn millis(&self, name: &'static str, default: u64) -> Result<Duration, ConfigError> {
        self.positive(name, default).map(Duration::from_millis)
    }

    /// A nice increment: 0 (none) to 19 (the lowest priority there is).
    pub fn nice(&self, name: &'static str, default: u8) -> Result<u8, ConfigError> {
        let value: u8 = self.or(name, default)?;
        if value > 19 {
            return Err(ConfigError::Invalid {
                name,
                value: value.to_string(),
                reason: "must be 0 to 19".into(),
            });
        }
        Ok(value)
    }

    pub fn flag(&self, name: &'static str, default: bool) -> Result<bool, ConfigError> {
        match self.get(name).map(str::to_ascii_lowercase).as_deref() {
            None => Ok(default),
            Some("true" | "1" | "yes" | "on") => Ok(true),
            Some("false" | "0" | "no" | "off") => Ok(false),
            Some(other) => Err(ConfigError::Invalid {
                name,
                value: other.to_owned(),
                reason: "expected true or false".into(),
            }),
        }
    }
}

fn parse<T>(name: &'static str, value: &str) -> Result<T, ConfigError>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    value.parse().map_err(|e: T::Err| ConfigError::Invalid {
        name,
        value: value.to_owned(),
        reason: e.to_string(),
    })
}

/// A variable that is missing or malformed; the message names it.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{name}={value:?} is invalid: {reason}")]
    Invalid {
        name: &'static str,
        value: String,
        reason: String,
    },
    #[error("{name} is required: {reason}")]
    Missing {
        name: &'static str,
        reason: &'static str,
    },
    #[error("{first} and {second} are both set: {reason}")]
    Conflict {
        first: &'static str,
        second: &'static str,
        reason: &'static str,
    },
    #[error("{name} is set, but aim does not read it: {reason}")]
    Unread {
        name: &'static str,
        reason: &'static str,
    },
}
