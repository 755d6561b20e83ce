//! What a close frame from the router says: its code, and for a moved session (`4001`,
//! `4003`) the handoff fields of its reason — `moved; delivered=N; retry_after_ms=M;
//! region=NAME`. The parser is total: any reason, however malformed, parses to something (the
//! fields it could read), never an error and never a panic. Unknown keys are ignored, so the
//! router may add fields.

use std::time::Duration;

/// The router's close codes (every other code is the backend's own).
pub mod codes {
    /// Moved to another backend or router node (drain, shutdown, a reload that removes the
    /// backend).
    pub const MOVED: u16 = 4001;
    /// The backend was lost abnormally; nothing says what it read.
    pub const BACKEND_LOST: u16 = 4002;
    /// Moved to another region (evacuation).
    pub const REGION_MOVED: u16 = 4003;
    /// Try again later (overload after the upgrade).
    pub const TRY_LATER: u16 = 1013;
    /// Refused by policy (e.g. a forged token): do not retry.
    pub const REFUSED: u16 = 1008;
}

/// A close frame: code and reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseInfo {
    pub code: u16,
    pub reason: String,
}

/// The fields of a `moved` close reason. Every field is optional: a reason that says less
/// (or is not a `moved` reason at all) leaves them `None`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Handoff {
    /// Complete data messages the client sent on the closed connection that the backend read
    /// before its clean close. `None`: nothing says what arrived.
    pub delivered: Option<u64>,
    /// How long to wait before reconnecting.
    pub retry_after: Option<Duration>,
    /// Where to go (`4003`).
    pub region: Option<String>,
}

impl CloseInfo {
    pub fn new(code: u16, reason: impl Into<String>) -> CloseInfo {
        CloseInfo {
            code,
            reason: reason.into(),
        }
    }

    /// The handoff fields of the reason (all `None` unless the reason starts with `moved`).
    pub fn handoff(&self) -> Handoff {
        Handoff::parse(&self.reason)
    }
}

impl Handoff {
    /// Reads `moved; key=value; …`. A reason not starting with the word `moved` has no fields;
    /// a field whose value does not parse is absent; a repeated key keeps its first value.
    ///
    /// ```
    /// use std::time::Duration;
    /// use switchyard_client::close::Handoff;
    /// let h = Handoff::parse("moved; delivered=1234; retry_after_ms=350; region=eu-west");
    /// assert_eq!(h.delivered, Some(1234));
    /// assert_eq!(h.retry_after, Some(Duration::from_millis(350)));
    /// assert_eq!(h.region.as_deref(), Some("eu-west"));
    /// assert_eq!(Handoff::parse("backend draining"), Handoff::default());
    /// ```
    pub fn parse(reason: &str) -> Handoff {
        let mut fields = reason.split(';');
        let mut out = Handoff::default();
        if fields.next().map(str::trim) != Some("moved") {
            return out;
        }
        for field in fields {
            let Some((key, value)) = field.split_once('=') else {
                continue;
            };
            let value = value.trim();
            match key.trim() {
                "delivered" if out.delivered.is_none() => out.delivered = value.parse().ok(),
                "retry_after_ms" if out.retry_after.is_none() => {
                    out.retry_after = value.parse().ok().map(Duration::from_millis);
                }
                "region" if out.region.is_none() && !value.is_empty() => {
                    out.region = Some(value.to_string());
                }
                _ => {}
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_reason_gives_every_field() {
        let h = Handoff::parse("moved; delivered=1234; retry_after_ms=350; region=eu-west");
        assert_eq!(
            h,
            Handoff {
                delivered: Some(1234),
                retry_after: Some(Duration::from_millis(350)),
                region: Some("eu-west".into()),
            }
        );
        // Spacing is free, order too.
        let h = Handoff::parse("moved;region=us-east;retry_after_ms=0;delivered=0");
        assert_eq!(h.delivered, Some(0));
        assert_eq!(h.retry_after, Some(Duration::ZERO));
        assert_eq!(h.region.as_deref(), Some("us-east"));
    }

    #[test]
    fn unknown_keys_are_ignored_and_missing_fields_are_none() {
        let h = Handoff::parse("moved; node=b; delivered=7; future=x=y; cause=drain");
        assert_eq!(h.delivered, Some(7));
        assert_eq!(h.retry_after, None);
        assert_eq!(h.region, None);
        assert_eq!(Handoff::parse("moved"), Handoff::default());
        assert_eq!(Handoff::parse("moved;"), Handoff::default());
        assert_eq!(
            Handoff::parse("moved; retry_after_ms=20").retry_after,
            Some(Duration::from_millis(20))
        );
    }

    #[test]
    fn garbage_parses_to_nothing_and_never_panics() {
        for reason in [
            "",
            ";;;",
            "backend draining",
            "region a cannot take sessions; move to b http://x",
            "movedx; delivered=3",
            "moved; delivered=-1; retry_after_ms=1.5; region=",
            "moved; delivered=99999999999999999999999; retry_after_ms=18446744073709551616",
            "moved; delivered; =4; region",
            "moved; délivered=3; région=ü",
            "\u{0}\u{ffff}moved",
        ] {
            let h = Handoff::parse(reason);
            assert_eq!(h.delivered, None, "{reason:?}");
            assert_eq!(h.retry_after, None, "{reason:?}");
            assert_eq!(h.region, None, "{reason:?}");
        }
        // A repeated key keeps its first value: a later field cannot rewrite what arrived.
        assert_eq!(
            Handoff::parse("moved; delivered=5; delivered=9").delivered,
            Some(5)
        );
    }

    #[test]
    fn a_reason_at_the_123_byte_limit_parses() {
        let head = "moved; delivered=18446744073709551615; retry_after_ms=4294967295; region=";
        let reason = format!("{head}{}", "r".repeat(123 - head.len()));
        assert_eq!(reason.len(), 123);
        let h = Handoff::parse(&reason);
        assert_eq!(h.delivered, Some(u64::MAX));
        assert_eq!(h.retry_after, Some(Duration::from_millis(4_294_967_295)));
        assert_eq!(h.region.map(|r| r.len()), Some(123 - head.len()));
        // Cut mid-field (a router that truncated): the cut field is dropped or shortened, the
        // others stay.
        let cut = "moved; delivered=12; retry_after_ms=35";
        assert_eq!(Handoff::parse(cut).delivered, Some(12));
    }

    #[test]
    fn close_info_reads_its_reason() {
        let c = CloseInfo::new(codes::MOVED, "moved; delivered=2");
        assert_eq!(c.handoff().delivered, Some(2));
        assert_eq!(
            CloseInfo::new(4002, "backend lost").handoff(),
            Handoff::default()
        );
    }
}
