//! Test support shared by every crate of the workspace: a real `redis-server` on a free loopback
//! port ([`RedisServer`]) and the conformance suite every Object backend passes
//! ([`conformance`], instantiated with [`conformance_suite!`](crate::conformance_suite)), and
//! the one every Log backend passes ([`log_conformance`], with
//! [`log_conformance_suite!`](crate::log_conformance_suite)).

pub mod conformance;
pub mod log_conformance;
pub use crate::redis::{RedisServer, free_port};
