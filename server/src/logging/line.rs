//! One access line, formatted by the worker that served the request straight into its own
//! buffer: no allocation per line, and the same shape tracing-subscriber's fmt layer gave the
//! access events before they left `tracing` (so collectors parsing them see no change):
//!
//! ```text
//! 2026-11-30T16:51:05.896627Z  INFO switchyard::access: method=GET path=/api/x status=200 backend="b1" peer=127.0.0.1 duration_us=4501 total_us=9012 bytes=5120 request_id=abc
//! {"timestamp":"2026-11-30T16:51:05.896627Z","level":"INFO","fields":{"method":"GET","path":"/api/x","status":200,"backend":"b1","peer":"127.0.0.1","duration_us":4501,"total_us":9012,"bytes":5120,"request_id":"abc"},"target":"switchyard::access"}
//! ```
//!
//! `duration_us` is the time to the response head (what it always was); `total_us` the time
//! until the answer's last byte was handed to the connection (or the client went away), and
//! `bytes` the answer's body bytes sent — the line is written then, so a stream's line comes
//! when the stream ends.

use std::io::Write;
use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::config::LogFormat;

use super::ACCESS_TARGET;

/// What one access line says about a request.
#[derive(Debug, Clone, Copy)]
pub struct AccessLine<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub status: u16,
    /// The backend (or `region:NAME`) that answered or failed; `-` when none.
    pub backend: &'a str,
    /// The immediate peer; `-` in the line when unknown.
    pub peer: Option<IpAddr>,
    /// Time to the response head.
    pub duration_us: u64,
    /// Time until the body was sent (or the client went away).
    pub total_us: u64,
    /// Body bytes sent to the client.
    pub bytes: u64,
    pub request_id: &'a [u8],
}

/// A worker's clock for its lines: the date and time up to the second are formatted once per
/// second, each line adds only its microseconds.
#[derive(Debug, Default)]
pub struct Clock {
    second: Option<u64>,
    /// `2026-11-30T16:51:05.`
    prefix: [u8; 20],
}

impl Clock {
    /// Appends `now` as RFC 3339 UTC with microseconds (what tracing-subscriber writes):
    /// `2026-11-30T16:51:05.896627Z`.
    fn write_at(&mut self, now: SystemTime, out: &mut Vec<u8>) {
        let since = now.duration_since(UNIX_EPOCH).unwrap_or_default();
        let second = since.as_secs();
        if self.second != Some(second) {
            // `2026-11-30T16:51:05Z`: 20 bytes; the `Z` becomes the `.` before the fraction.
            let mut formatted = [0u8; 32];
            let mut cursor = &mut formatted[..];
            let start = humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(second));
            if write!(cursor, "{start}").is_ok() && formatted[19] == b'Z' {
                self.prefix.copy_from_slice(&formatted[..20]);
                self.prefix[19] = b'.';
                self.second = Some(second);
            }
        }
        out.extend_from_slice(&self.prefix);
        let micros = since.subsec_micros();
        let mut digits = [b'0'; 6];
        let mut rest = micros;
        for digit in digits.iter_mut().rev() {
            *digit = b'0' + (rest % 10) as u8;
            rest /= 10;
        }
        out.extend_from_slice(&digits);
        out.push(b'Z');
    }
}

/// Appends `line` in `format`, stamped now, ending with a newline.
pub fn write(out: &mut Vec<u8>, clock: &mut Clock, format: LogFormat, line: &AccessLine) {
    let now = SystemTime::now();
    match format {
        LogFormat::Text => text(out, clock, now, line),
        LogFormat::Json => json(out, clock, now, line),
    }
}

fn text(out: &mut Vec<u8>, clock: &mut Clock, now: SystemTime, line: &AccessLine) {
    let mut numbers = itoa::Buffer::new();
    clock.write_at(now, out);
    out.extend_from_slice(b"  INFO ");
    out.extend_from_slice(ACCESS_TARGET.as_bytes());
    out.extend_from_slice(b": method=");
    out.extend_from_slice(line.method.as_bytes());
    out.extend_from_slice(b" path=");
    out.extend_from_slice(line.path.as_bytes());
    out.extend_from_slice(b" status=");
    out.extend_from_slice(numbers.format(line.status).as_bytes());
    // The backend was a string field, which the text format writes quoted (Rust's `Debug`).
    out.extend_from_slice(b" backend=");
    debug_str(out, line.backend);
    out.extend_from_slice(b" peer=");
    peer(out, &mut numbers, line.peer);
    out.extend_from_slice(b" duration_us=");
    out.extend_from_slice(numbers.format(line.duration_us).as_bytes());
    out.extend_from_slice(b" total_us=");
    out.extend_from_slice(numbers.format(line.total_us).as_bytes());
    out.extend_from_slice(b" bytes=");
    out.extend_from_slice(numbers.format(line.bytes).as_bytes());
    out.extend_from_slice(b" request_id=");
    out.extend_from_slice(String::from_utf8_lossy(line.request_id).as_bytes());
    out.push(b'\n');
}

fn json(out: &mut Vec<u8>, clock: &mut Clock, now: SystemTime, line: &AccessLine) {
    let mut numbers = itoa::Buffer::new();
    out.extend_from_slice(b"{\"timestamp\":\"");
    clock.write_at(now, out);
    out.extend_from_slice(b"\",\"level\":\"INFO\",\"fields\":{\"method\":");
    json_str(out, line.method);
    out.extend_from_slice(b",\"path\":");
    json_str(out, line.path);
    out.extend_from_slice(b",\"status\":");
    out.extend_from_slice(numbers.format(line.status).as_bytes());
    out.extend_from_slice(b",\"backend\":");
    json_str(out, line.backend);
    out.extend_from_slice(b",\"peer\":\"");
    // An address or `-`: nothing to escape.
    peer(out, &mut numbers, line.peer);
    out.extend_from_slice(b"\",\"duration_us\":");
    out.extend_from_slice(numbers.format(line.duration_us).as_bytes());
    out.extend_from_slice(b",\"total_us\":");
    out.extend_from_slice(numbers.format(line.total_us).as_bytes());
    out.extend_from_slice(b",\"bytes\":");
    out.extend_from_slice(numbers.format(line.bytes).as_bytes());
    out.extend_from_slice(b",\"request_id\":");
    json_str(out, &String::from_utf8_lossy(line.request_id));
    out.extend_from_slice(b"},\"target\":\"");
    out.extend_from_slice(ACCESS_TARGET.as_bytes());
    out.extend_from_slice(b"\"}\n");
}

fn peer(out: &mut Vec<u8>, numbers: &mut itoa::Buffer, peer: Option<IpAddr>) {
    match peer {
        // The usual case by hand: `Display` goes through the formatting machinery, about
        // 900 instructions an address.
        Some(IpAddr::V4(v4)) => {
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push(b'.');
                }
                out.extend_from_slice(numbers.format(octet).as_bytes());
            }
        }
        // Formatted on the stack: no allocation.
        Some(ip) => {
            let _ = write!(out, "{ip}");
        }
        None => out.push(b'-'),
    }
}

/// `s` as Rust's `Debug` writes it: quoted, with escapes. Backend ids are plain ASCII, so
/// the quick path is the usual one.
fn debug_str(out: &mut Vec<u8>, s: &str) {
    if s.bytes()
        .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
    {
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else {
        let _ = write!(out, "{s:?}");
    }
}

/// `s` as a JSON string, escaped as serde_json does.
fn json_str(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut plain = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0x00..=0x1f => &[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[(b >> 4) as usize],
                HEX[(b & 0xf) as usize],
            ],
            _ => continue,
        };
        out.extend_from_slice(&bytes[plain..i]);
        out.extend_from_slice(escape);
        plain = i + 1;
    }
    out.extend_from_slice(&bytes[plain..]);
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line<'a>(path: &'a str, backend: &'a str, request_id: &'a [u8]) -> AccessLine<'a> {
        AccessLine {
            method: "GET",
            path,
            status: 200,
            backend,
            peer: Some(IpAddr::from([127, 0, 0, 1])),
            duration_us: 4501,
            total_us: 9012,
            bytes: 5120,
            request_id,
        }
    }

    fn at(clock: &mut Clock, micros: u64, format: LogFormat, line: &AccessLine) -> String {
        let mut out = Vec::new();
        let now = UNIX_EPOCH + Duration::from_micros(micros);
        match format {
            LogFormat::Text => text(&mut out, clock, now, line),
            LogFormat::Json => json(&mut out, clock, now, line),
        }
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn timestamps_match_rfc3339_with_micros_across_seconds() {
        let mut clock = Clock::default();
        for micros in [
            1_796_061_065_896_627u64,
            1_796_061_065_000_001,
            1_796_061_066_000_000,
            1_796_061_066_999_999,
            0,
        ] {
            let when = UNIX_EPOCH + Duration::from_micros(micros);
            let mut out = Vec::new();
            clock.write_at(when, &mut out);
            assert_eq!(
                String::from_utf8(out).unwrap(),
                humantime::format_rfc3339_micros(when).to_string()
            );
        }
    }

    #[test]
    fn text_lines_have_the_fmt_layers_shape() {
        let mut clock = Clock::default();
        let text = at(
            &mut clock,
            1_796_061_065_896_627,
            LogFormat::Text,
            &line("/api/x", "b1", b"abc\"d\\e"),
        );
        assert_eq!(
            text,
            "2026-11-30T17:51:05.896627Z  INFO switchyard::access: method=GET path=/api/x \
             status=200 backend=\"b1\" peer=127.0.0.1 duration_us=4501 total_us=9012 bytes=5120 \
             request_id=abc\"d\\e\n"
        );
        let mut out = Vec::new();
        debug_str(&mut out, "a\"b\\c\nd é");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            format!("{:?}", "a\"b\\c\nd é")
        );
    }

    #[test]
    fn peers_are_written_as_displayed() {
        let mut numbers = itoa::Buffer::new();
        for ip in [
            IpAddr::from([127, 0, 0, 1]),
            IpAddr::from([0, 0, 0, 0]),
            IpAddr::from([255, 10, 200, 9]),
            "2001:db8::1".parse().unwrap(),
            "::ffff:10.0.0.1".parse().unwrap(),
        ] {
            let mut out = Vec::new();
            peer(&mut out, &mut numbers, Some(ip));
            assert_eq!(String::from_utf8(out).unwrap(), ip.to_string());
        }
    }

    #[test]
    fn json_lines_parse_with_every_field() {
        let mut clock = Clock::default();
        let mut access = line("/a%20b/\"x\u{1}\t", "region:eu", b"abc\"d\\e");
        access.peer = None;
        let text = at(&mut clock, 1_796_061_065_896_627, LogFormat::Json, &access);
        assert!(text.ends_with('\n'));
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            value,
            serde_json::json!({
                "timestamp": "2026-11-30T17:51:05.896627Z",
                "level": "INFO",
                "fields": {
                    "method": "GET",
                    "path": "/a%20b/\"x\u{1}\t",
                    "status": 200,
                    "backend": "region:eu",
                    "peer": "-",
                    "duration_us": 4501,
                    "total_us": 9012,
                    "bytes": 5120,
                    "request_id": "abc\"d\\e",
                },
                "target": "switchyard::access",
            })
        );
        // Escaped as serde_json escapes, byte for byte.
        let mut out = Vec::new();
        json_str(&mut out, "q\"\\\n\r\t\u{8}\u{c}\u{1f}é\u{7f}");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            serde_json::to_string("q\"\\\n\r\t\u{8}\u{c}\u{1f}é\u{7f}").unwrap()
        );
    }
}
