//! `[limits]`: request head limits and client timeouts on every listener.

use std::time::Duration;

use super::Issues;
use crate::config::Limits;
use crate::config::raw::RawLimits;

/// Shortest client timeout: below it, ordinary network jitter would cut clients.
const MIN_CLIENT_TIMEOUT: Duration = Duration::from_millis(100);

pub(super) fn limits(raw: &RawLimits, issues: &mut Issues) -> Limits {
    if raw.max_uri_bytes < 256 {
        issues.push("limits.max_uri_bytes", "must be at least 256");
    }
    if raw.max_header_bytes < 1024 {
        issues.push("limits.max_header_bytes", "must be at least 1024");
    }
    for (key, value) in [
        ("limits.header_timeout", raw.header_timeout.0),
        ("limits.idle_timeout", raw.idle_timeout.0),
        ("limits.write_timeout", raw.write_timeout.0),
    ] {
        if value < MIN_CLIENT_TIMEOUT {
            issues.push(key, "must be at least 100ms");
        }
    }
    if raw.burst_per_ip == Some(0) {
        issues.push(
            "limits.burst_per_ip",
            "must be at least 1 (set rate_per_ip = 0 for no limit)",
        );
    }
    // RFC 9113 §6.5.2: windows up to 2^31-1, frames from 16,384 to 2^24-1 bytes.
    const MAX_WINDOW: u32 = (1 << 31) - 1;
    for (key, value) in [
        (
            "limits.h2_initial_stream_window",
            raw.h2_initial_stream_window,
        ),
        (
            "limits.h2_initial_connection_window",
            raw.h2_initial_connection_window,
        ),
    ] {
        if !(65_535..=MAX_WINDOW).contains(&value) {
            issues.push(key, format!("must be from 65535 to {MAX_WINDOW} bytes"));
        }
    }
    if !(16_384..=16_777_215).contains(&raw.h2_max_frame_size) {
        issues.push(
            "limits.h2_max_frame_size",
            "must be from 16384 to 16777215 bytes (RFC 9113)",
        );
    }
    Limits {
        max_uri_bytes: raw.max_uri_bytes,
        max_header_bytes: raw.max_header_bytes,
        max_connections_per_ip: raw.max_connections_per_ip,
        max_streams_per_connection: raw.max_streams_per_connection,
        h2_initial_stream_window: raw.h2_initial_stream_window,
        h2_initial_connection_window: raw.h2_initial_connection_window,
        h2_max_frame_size: raw.h2_max_frame_size,
        header_timeout: raw.header_timeout.0,
        idle_timeout: raw.idle_timeout.0,
        write_timeout: raw.write_timeout.0,
    }
}
