//! The session side's metrics, through the `metrics` crate (the app installs whatever recorder
//! it exports with; without one these cost next to nothing). Names follow
//! `switchyard_client_<noun>_<unit>`, like the request side's in [`crate::telemetry`].

/// Reconnects started, labelled `reason`: what ended the connection (`moved`, `region_moved`,
/// `backend_lost`, `try_later`, `dead`, `backend_close`).
pub const RECONNECTS: &str = "switchyard_client_reconnects_total";
/// Sessions connected again, labelled `recovered` (`true`: nothing the app sent can be
/// missing).
pub const RESUMES: &str = "switchyard_client_resumes_total";
/// Messages re-sent after a handoff said they had not arrived.
pub const RESENT_MESSAGES: &str = "switchyard_client_resent_messages_total";

/// The `reason` label of what ended a connection (`None`: a dead path).
pub(crate) fn reason_label(code: Option<u16>) -> &'static str {
    use crate::close::codes;
    match code {
        None => "dead",
        Some(codes::MOVED) => "moved",
        Some(codes::REGION_MOVED) => "region_moved",
        Some(codes::BACKEND_LOST) => "backend_lost",
        Some(codes::TRY_LATER) => "try_later",
        Some(_) => "backend_close",
    }
}

pub(crate) fn reconnecting(code: Option<u16>) {
    metrics::counter!(RECONNECTS, "reason" => reason_label(code)).increment(1);
}

pub(crate) fn resumed(recovered: bool, resent: usize) {
    let recovered = if recovered { "true" } else { "false" };
    metrics::counter!(RESUMES, "recovered" => recovered).increment(1);
    metrics::counter!(RESENT_MESSAGES).increment(resent as u64);
}
