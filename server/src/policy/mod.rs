//! Policies the request path applies, below the routing table that holds them: the retry
//! budget ([`retry`]), rate limits ([`ratelimit`], local and shared through Redis) and load
//! shedding ([`shed`]); the canary judgement ([`canary`]) a rollout applies to the
//! routes' outcomes, and a rollout's plan and decisions ([`rollout`]).

pub mod canary;
pub mod ratelimit;
pub mod retry;
pub mod rollout;
pub mod shed;
