//! Turns a panic inside an actor's handler into a supervised restart.
//!
//! actix's `Supervisor` restarts an actor that stops, but a panic unwinds straight through the
//! actor's task and takes it down for good. Handlers that do real work run their body through
//! [`guarded`]: a panic is caught, logged with the actor's name, counted, and the actor stops,
//! which its supervisor answers by calling `restarting` and `started` again.

use std::panic::{AssertUnwindSafe, catch_unwind};

use actix::ActorContext;

/// Runs `work`; on panic logs it, counts it and stops the actor (so it is restarted).
pub fn guarded<C, R>(ctx: &mut C, actor: &str, work: impl FnOnce() -> R) -> Option<R>
where
    C: ActorContext,
{
    match catch_unwind(AssertUnwindSafe(work)) {
        Ok(result) => Some(result),
        Err(panic) => {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "non-string panic".to_string());
            tracing::error!(actor, %message, "actor panicked; restarting it");
            metrics::counter!("switchyard_actor_restarts_total", "actor" => actor.to_string())
                .increment(1);
            ctx.stop();
            None
        }
    }
}

/// Makes an actor panic inside a guarded handler: exercises supervision in tests.
#[doc(hidden)]
#[derive(actix::Message, Debug)]
#[rtype(result = "()")]
pub struct InjectPanic;

/// How many times an actor has been restarted after a failure.
#[derive(actix::Message, Debug)]
#[rtype(result = "u32")]
pub struct GetRestarts;
