//! Policies the request path applies, below the routing table that holds them: the retry
//! budget ([`retry`]), rate limits ([`ratelimit`], local and shared through Redis) and load
//! shedding ([`shed`]).

pub mod ratelimit;
pub mod retry;
pub mod shed;
