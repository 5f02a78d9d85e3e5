//! Test support shared by every crate of the workspace: a real `redis-server` on a free loopback
//! port ([`RedisServer`]), a real kube-apiserver with etcd ([`KubeApiserver`], one per test
//! process with [`shared_kube_apiserver`]), the conformance suite every Object backend passes
//! ([`conformance`], instantiated with [`conformance_suite!`](crate::conformance_suite)), and
//! the one every Log backend passes ([`log_conformance`], with
//! [`log_conformance_suite!`](crate::log_conformance_suite)), and a deny matrix that checks a
//! principal's connection against its rights ([`deny_matrix`]).

pub mod conformance;
pub mod deny_matrix;
pub mod log_conformance;

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

pub use crate::kube::KubeApiserver;
pub use crate::ports::free_port;
pub use crate::redis::RedisServer;

/// The kube-apiserver the tests of this process share (it takes seconds to start); each test
/// keeps to a namespace of its own ([`fresh_namespace`]). It ends with the process.
pub fn shared_kube_apiserver() -> &'static KubeApiserver {
    static SERVER: OnceLock<KubeApiserver> = OnceLock::new();
    SERVER.get_or_init(KubeApiserver::start)
}

/// A namespace name no other test of this process uses: `PREFIX-PID-N`.
pub fn fresh_namespace(prefix: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!("{prefix}-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}
