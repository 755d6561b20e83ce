//! The config loader (`Config::from_toml_str`: TOML → `RawConfig` → validated `Config`).
//!
//! Checks: no panic on any text (validation must refuse, not crash, and every refusal names
//! at least one problem).
//!
//! Validation reads two files (`node.admin_token_file`, `sessions.cookie_key_file`) and
//! resolves host names in addresses. Fuzzing either would make runs slow, flaky or stuck on
//! a path such as `/dev/zero`, so texts that hold a `*_file` key, or a string naming a host
//! that is neither an IP address nor `localhost`, are skipped (the loader's file and DNS
//! handling have unit tests of their own).
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchyard::config::Config;

/// True when `text`, read as a backend address or endpoint, names a host to look up.
fn names_a_host(text: &str) -> bool {
    let text = text.trim().trim_end_matches('/');
    let text = match text.strip_prefix("http://") {
        Some(rest) => rest,
        // Without a scheme, only `host:port` is looked up.
        None if text.contains(':') => text,
        None => return false,
    };
    let host = match text.rsplit_once(':') {
        Some((host, _)) => host,
        None => text,
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    !host.is_empty()
        && host.parse::<std::net::IpAddr>().is_err()
        && !host.eq_ignore_ascii_case("localhost")
        && host
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'.' || c == b'_')
}

/// True when loading `value` could touch the file system or DNS.
fn reaches_out(value: &toml::Value) -> bool {
    match value {
        toml::Value::String(s) => names_a_host(s),
        toml::Value::Array(items) => items.iter().any(reaches_out),
        toml::Value::Table(table) => table
            .iter()
            .any(|(key, value)| key.ends_with("_file") || reaches_out(value)),
        _ => false,
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // Text that is not TOML fails in the loader before validation: nothing to skip.
    if let Ok(table) = text.parse::<toml::Table>()
        && reaches_out(&toml::Value::Table(table))
    {
        return;
    }
    if let Err(err) = Config::from_toml_str(text) {
        assert!(!err.issues.is_empty(), "a refusal without an issue");
    }
});
