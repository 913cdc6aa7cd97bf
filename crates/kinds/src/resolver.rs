//! [`PolicyResolver`]: name resolution behind a destination policy, for every outbound
//! HTTP client errand builds (the `http_request` and `fan_out` kinds', the worker's webhook
//! deliveries).

use std::{marker::PhantomData, net::SocketAddr, sync::Arc};

use errand_core::settings::{DestinationPolicy, Unresolved};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Resolves names like the system does, then drops every address the policy refuses: the
/// check sits where the address is chosen, so a name that resolves (or is re-pointed) to a
/// private address is never connected to.
///
/// A refusal travels inside reqwest's error as an `R` built from the policy's reason, so
/// each client finds it again by its own type (and words it for its own settings section).
pub struct PolicyResolver<R> {
    policy: Arc<DestinationPolicy>,
    refusal: PhantomData<fn(String) -> R>,
}

impl<R> PolicyResolver<R> {
    /// A resolver that applies `policy`.
    pub fn new(policy: Arc<DestinationPolicy>) -> Self {
        Self {
            policy,
            refusal: PhantomData,
        }
    }
}

impl<R> std::fmt::Debug for PolicyResolver<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicyResolver").finish_non_exhaustive()
    }
}

impl<R> Resolve for PolicyResolver<R>
where
    R: From<String> + std::error::Error + Send + Sync + 'static,
{
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy.clone();
        Box::pin(async move { resolved::<R>(policy.resolve(name.as_str()).await) })
    }
}

/// The policy's answer in reqwest's types (the return type does the boxing).
fn resolved<R>(
    r: Result<Vec<SocketAddr>, Unresolved>,
) -> Result<Addrs, Box<dyn std::error::Error + Send + Sync>>
where
    R: From<String> + std::error::Error + Send + Sync + 'static,
{
    match r {
        Ok(addrs) => Ok(Box::new(addrs.into_iter())),
        Err(Unresolved::Refused(why)) => Err(Box::new(R::from(why))),
        Err(Unresolved::Lookup(e)) => Err(Box::new(e)),
    }
}
