//! An operator's weight for one backend.

use super::actor::PoolActor;
use super::error::PoolError;
use super::messages::SetWeight;

impl PoolActor {
    pub(super) fn set_weight(&mut self, msg: SetWeight) -> Result<(), PoolError> {
        let pool = self.config.id.clone();
        let Some(member) = self.members.iter_mut().find(|m| *m.id == *msg.backend) else {
            return Err(PoolError::NoBackend {
                pool,
                backend: msg.backend,
            });
        };
        if member.weight != msg.weight {
            tracing::info!(pool = %pool, backend = %member.id, from = member.weight, to = msg.weight, "backend weight changed");
            member.weight = msg.weight;
            self.publish();
        }
        Ok(())
    }
}
