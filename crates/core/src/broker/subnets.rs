//! Choosing a network's subnet: host collisions and remembered subnets.
//!
//! Before the backend creates a network, the broker
//!
//! 1. refuses a static subnet or IPv6 prefix that overlaps a network of the
//!    host or a reserved range ([`crate::hostnet`]), naming what is in the
//!    way and a free /24;
//! 2. for a network without a static subnet (or prefix) that has one
//!    remembered and `remember_subnet` on, asks the backend for the
//!    remembered one first, unless it now collides with the host; if that
//!    fails, lets the backend choose and logs the change;
//! 3. records what the network got, for next time.

use std::fmt;

use tracing::{info, warn};
use vmnet_broker_proto::{NetworkInfo, NetworkName};

use super::{AccountLookup, AcquireError, Broker};
use crate::backend::Backend;
use crate::config::{ConfigSource, NetworkConfig};
use crate::hostnet::{CollisionCheck, HostNetwork, IpNet, RESERVED_RANGES};
use crate::state::Remembered;

/// Where a live network's subnet came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubnetOrigin {
    /// The configuration sets it.
    Static,
    /// The one it had last time, asked for again.
    Remembered,
    /// Chosen by vmnet; nothing was remembered (or remembering is off).
    Chosen,
    /// Chosen by vmnet, and different from the one remembered: the
    /// remembered subnet could not be had.
    Changed,
}

impl SubnetOrigin {
    /// `static`, `remembered`, `chosen` or `changed`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Static => "static",
            Self::Remembered => "remembered",
            Self::Chosen => "chosen",
            Self::Changed => "changed",
        }
    }
}

impl fmt::Display for SubnetOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

fn nets_of(info: &NetworkInfo) -> [IpNet; 2] {
    let r = Remembered::from_info(info);
    [IpNet::V4(r.ipv4), IpNet::V6(r.ipv6)]
}

impl<B: Backend, C: ConfigSource, A: AccountLookup> Broker<B, C, A> {
    /// The host's networks, or none (with a warning) when they cannot be
    /// listed or no source was given.
    fn host_snapshot(&self) -> Vec<HostNetwork> {
        let Some(source) = &self.host else {
            return Vec::new();
        };
        match source.host_networks() {
            Ok(list) => list,
            Err(e) => {
                warn!("{e}; subnets are not checked against the host");
                Vec::new()
            }
        }
    }

    /// The subnets and prefixes of the live networks.
    fn own_nets(&self) -> Vec<IpNet> {
        self.networks
            .values()
            .flat_map(|e| nets_of(&e.info))
            .collect()
    }

    /// Creates `name` in the backend following the rules of this module.
    pub(super) fn create_in_backend(
        &mut self,
        name: &NetworkName,
        config: &NetworkConfig,
    ) -> Result<(B::Network, SubnetOrigin), AcquireError> {
        let is_static = config.ipv4.is_some() || config.ipv6.is_some();
        let remembered = config
            .remember_subnet
            .then(|| self.remembered.get(name.as_str()).copied())
            .flatten()
            .filter(|_| config.ipv4.is_none() || config.ipv6.is_none());
        let (host, own) = if is_static || remembered.is_some() {
            (self.host_snapshot(), self.own_nets())
        } else {
            (Vec::new(), Vec::new())
        };

        if is_static {
            let check = CollisionCheck {
                host: &host,
                reserved: &RESERVED_RANGES,
                own: &own,
            };
            check
                .check(config.ipv4, config.ipv6)
                .map_err(AcquireError::HostCollision)?;
        }

        if let Some(r) = remembered {
            let mut wanted = config.clone();
            let ipv4 = config.ipv4.is_none().then_some(r.ipv4);
            let ipv6 = config.ipv6.is_none().then_some(r.ipv6);
            wanted.ipv4 = wanted.ipv4.or(ipv4);
            wanted.ipv6 = wanted.ipv6.or(ipv6);
            // The remembered subnet is the network's own: the reserved
            // ranges (where vmnet itself put it) do not apply, the host does.
            let check = CollisionCheck {
                host: &host,
                reserved: &[],
                own: &own,
            };
            match check.check(ipv4, ipv6) {
                Ok(()) => match self.backend.create(name, &wanted) {
                    Ok(network) if config.ipv4.is_some() => {
                        return Ok((network, SubnetOrigin::Static));
                    }
                    Ok(network) => return Ok((network, SubnetOrigin::Remembered)),
                    Err(e) => info!(
                        network = %name,
                        "the remembered subnet {} (IPv6 {}) cannot be had: {e}; letting vmnet choose",
                        r.ipv4, r.ipv6
                    ),
                },
                Err(collisions) => info!(
                    network = %name,
                    "the remembered subnet now collides with the host: {collisions}; letting vmnet choose"
                ),
            }
        }

        let network = self
            .backend
            .create(name, config)
            .map_err(AcquireError::Backend)?;
        let origin = match remembered {
            None if config.ipv4.is_some() => SubnetOrigin::Static,
            None => SubnetOrigin::Chosen,
            Some(r) => {
                let got = Remembered::from_info(&self.backend.info(&network));
                warn!(
                    network = %name,
                    was = %r.ipv4,
                    now = %got.ipv4,
                    was_ipv6 = %r.ipv6,
                    now_ipv6 = %got.ipv6,
                    "the network's subnet changed since last time"
                );
                SubnetOrigin::Changed
            }
        };
        Ok((network, origin))
    }

    /// Records the subnet a network just got, if it remembers.
    pub(super) fn remember(
        &mut self,
        name: &NetworkName,
        config: &NetworkConfig,
        info: &NetworkInfo,
    ) {
        if config.remember_subnet
            && self
                .remembered
                .insert(name.clone(), Remembered::from_info(info))
            && let Some(store) = self.store.as_mut()
        {
            store.save(&self.remembered);
        }
    }
}
