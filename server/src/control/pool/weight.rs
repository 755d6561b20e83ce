//! An operator's weight for one backend.

use super::actor::PoolActor;
use super::error::PoolError;
use super::messages::SetWeight;

impl PoolActor {
    pub(super) fn set_weight(&mut self, msg: SetWeight) -> Result<(), PoolError> {
        let at = self.member_at(&msg.backend)?;
        let pool = self.config.id.clone();
        let member = &mut self.members[at];
        if member.weight != msg.weight {
            tracing::info!(pool = %pool, backend = %member.id, from = member.weight, to = msg.weight, "backend weight changed");
            member.weight = msg.weight;
            self.publish();
        }
        Ok(())
    }
}
