//! `Retry-After` (RFC 9110 §10.2.3): delta-seconds (`120`) or an HTTP-date
//! (`Wed, 21 Oct 2026 07:28:00 GMT`), read as a wait from now. Anything else is ignored.

use std::time::{Duration, SystemTime};

/// The wait a `Retry-After` value asks for; a date in the past is no wait, garbage is `None`.
pub(crate) fn parse(value: &str) -> Option<Duration> {
    parse_at(value, SystemTime::now())
}

fn parse_at(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(when.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_forms_read_and_garbage_is_ignored() {
        let now = httpdate::parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
        assert_eq!(parse_at("2", now), Some(Duration::from_secs(2)));
        assert_eq!(parse_at(" 0 ", now), Some(Duration::ZERO));
        assert_eq!(
            parse_at("Sun, 06 Nov 1994 08:49:40 GMT", now),
            Some(Duration::from_secs(3))
        );
        assert_eq!(
            parse_at("Sun, 06 Nov 1994 08:49:00 GMT", now),
            Some(Duration::ZERO),
            "a date in the past: no wait"
        );
        assert_eq!(parse_at("soon", now), None);
        assert_eq!(parse_at("-1", now), None);
        assert_eq!(parse_at("", now), None);
    }
}
