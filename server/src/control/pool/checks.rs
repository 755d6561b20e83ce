//! What a backend's own actor reports (its checks' verdict, its address, its load report),
//! folded into the pool's member; a change that changes nothing publishes nothing.

use crate::clock::Instant;

use super::actor::PoolActor;
use crate::control::backend::BackendChanged;
use crate::routing::BackendState;

impl PoolActor {
    /// Applies a backend actor's report.
    pub(super) fn apply(&mut self, change: BackendChanged) {
        let Some(member) = self.members.iter_mut().find(|m| m.id == change.id) else {
            tracing::warn!(pool = %self.config.id, backend = %change.id, "change for a backend this pool does not have");
            return;
        };
        let (load_percent, overloaded) = change
            .load
            .map_or((100, false), |l| (l.weight_percent, l.overloaded));
        if member.addr == change.addr
            && member.health == change.state
            && member.load_percent == load_percent
            && member.overloaded == overloaded
            && member.held_down == change.held_down
        {
            return;
        }
        member.held_down = change.held_down;
        member.load_percent = load_percent;
        member.overloaded = overloaded;
        // Back from failed checks: ease it in (a first verdict is not a comeback), and forget
        // failures from before (panic mode may have sent it requests while it was down).
        if member.health == BackendState::Down && change.state == BackendState::Up {
            member.joined_at = Some(Instant::now());
            member.stats.reset_failures();
        }
        member.addr = change.addr;
        member.health = change.state;
        self.publish();
    }
}
