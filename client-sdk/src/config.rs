//! `ClientConfig` as data: read from JSON or TOML (the C and Python bindings pass exactly this
//! JSON), written back out, field names the builder's method names, durations as strings
//! (`"250ms"`, `"10s"`), unknown fields refused with their name. Checks of the values
//! themselves happen once, when the client is built ([`ClientBuilder::build`](crate::ClientBuilder::build)).

use std::time::Duration;

use serde::Deserialize;

use crate::client::ClientConfig;
use crate::error::{Error, ErrorKind};

impl ClientConfig {
    /// Reads a configuration from JSON, e.g.
    /// `{"regions": [{"name": "eu", "endpoints": ["https://eu.example.net"]}], "deadline": "10s"}`.
    /// Fields left out keep their defaults; an unknown field or a bad value is an
    /// [`ErrorKind::Config`] naming where it is.
    ///
    /// ```
    /// use switchyard_client::{ClientBuilder, ClientConfig};
    /// let config = ClientConfig::from_json(r#"{
    ///     "regions": [{"name": "eu", "endpoints": ["https://eu.example.net"]}],
    ///     "deadline": "10s"
    /// }"#)?;
    /// assert_eq!(config.deadline, std::time::Duration::from_secs(10));
    /// let client = ClientBuilder::from_config(config).build()?;
    /// assert!(ClientConfig::from_json(r#"{"deadline": "soon"}"#).is_err());
    /// # Ok::<(), switchyard_client::Error>(())
    /// ```
    pub fn from_json(text: &str) -> Result<ClientConfig, Error> {
        let mut de = serde_json::Deserializer::from_str(text);
        serde_path_to_error::deserialize(&mut de).map_err(|err| {
            let path = err.path().to_string();
            let inner = err.into_inner();
            let at = match path.as_str() {
                "" | "." | "?" => String::new(),
                p => format!("{p}: "),
            };
            config_error(format!("JSON: {at}{inner}"))
        })
    }

    /// Reads a configuration from TOML (the same fields as [`ClientConfig::from_json`]).
    pub fn from_toml(text: &str) -> Result<ClientConfig, Error> {
        toml::from_str(text).map_err(|err| config_error(format!("TOML: {err}")))
    }

    /// The configuration as JSON (what [`ClientConfig::from_json`] reads back).
    pub fn to_json(&self) -> Result<String, Error> {
        serde_json::to_string_pretty(self).map_err(|err| config_error(format!("JSON: {err}")))
    }

    /// The configuration as TOML (what [`ClientConfig::from_toml`] reads back).
    pub fn to_toml(&self) -> Result<String, Error> {
        toml::to_string(self).map_err(|err| config_error(format!("TOML: {err}")))
    }
}

fn config_error(message: String) -> Error {
    Error::invalid(ErrorKind::Config(message))
}

/// Durations as human strings: `"250ms"`, `"10s"`, `"1m 30s"` (humantime's format).
pub(crate) mod duration {
    use super::*;

    pub fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(text.trim()).map_err(|err| {
            serde::de::Error::custom(format!(
                "invalid duration {text:?} ({err}); expected e.g. \"250ms\", \"10s\", \"1m\""
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_human_strings_and_bad_ones_say_what_was_wrong() {
        let config = ClientConfig::from_json(
            r#"{"deadline": "250ms", "backoff": {"base": "10ms", "cap": "3s"}}"#,
        )
        .unwrap();
        assert_eq!(config.deadline, Duration::from_millis(250));
        assert_eq!(config.backoff.cap, Duration::from_secs(3));
        assert_eq!(config.backoff.base, Duration::from_millis(10));
        let err = ClientConfig::from_json(r#"{"backoff": {"cap": "3s"}}"#).unwrap_err();
        assert!(err.to_string().contains("base"), "both given: {err}");
        let err = ClientConfig::from_json(r#"{"deadline": "soon"}"#).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("deadline") && text.contains("\"soon\""),
            "{text}"
        );
        let err =
            ClientConfig::from_json(r#"{"backoff": {"base": "1s", "jitter": 1}}"#).unwrap_err();
        assert!(err.to_string().contains("jitter"), "{err}");
    }
}
