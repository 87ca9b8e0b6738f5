//! What the host grants. The manifest is a request; the effective grant is
//! its intersection with the host's policy.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::host::HostPattern;
use crate::limits::{LimitEnforcement, ResourceLimits};
use crate::manifest::ExtensionManifest;
use crate::permission::PermissionSet;

/// Which hosts the host allows `http.fetch` to reach.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HostGrant {
    /// None (the default).
    #[default]
    None,
    /// Whatever the manifest lists.
    AsRequested,
    /// Only these patterns, intersected with the manifest's list.
    Only(Vec<String>),
}

/// The embedding application's policy for one extension: what it grants,
/// the ceilings on limits, and how strictly limits must be enforced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostPolicy {
    /// Permissions the host grants. Default: none.
    pub granted: PermissionSet,
    /// Hosts the host allows. Default: none.
    pub hosts: HostGrant,
    /// Ceilings on every limit. Default: [`ResourceLimits::default`].
    pub ceilings: ResourceLimits,
    /// Strict (default) refuses a backend that cannot enforce a limit.
    pub enforcement: LimitEnforcement,
    /// An instruction budget per execution (`fuel_exhausted` when spent).
    /// Default: off.
    pub fuel: Option<u64>,
    /// Whether `http.fetch` may reach loopback, private, link-local and
    /// the other non-public addresses (see
    /// [`non_public`](crate::host::non_public)) for this extension, when
    /// an allowed host resolves to one. Default: false. Only the host sets
    /// it: no manifest entry opens these networks, not even through
    /// [`HostPolicy::allow_requested`].
    #[serde(default)]
    pub private_network: bool,
}

impl Default for HostPolicy {
    fn default() -> Self {
        HostPolicy {
            granted: PermissionSet::none(),
            hosts: HostGrant::None,
            ceilings: ResourceLimits::default(),
            enforcement: LimitEnforcement::Strict,
            fuel: None,
            private_network: false,
        }
    }
}

impl HostPolicy {
    /// Grants whatever the manifest requests (every permission and host it
    /// lists), still capped by the default ceilings. The manifest is
    /// written by the extension's author, so this trusts the author: it is
    /// the development path of `morph run`, and what an installation
    /// records after a person approved the request. The default policy
    /// ([`HostPolicy::default`]) grants nothing.
    pub fn allow_requested() -> Self {
        HostPolicy {
            granted: PermissionSet::all(),
            hosts: HostGrant::AsRequested,
            ..HostPolicy::default()
        }
    }

    /// Grants `permissions` (intersected with the manifest's request).
    pub fn grant(mut self, permissions: impl IntoIterator<Item = crate::Permission>) -> Self {
        self.granted = permissions.into_iter().collect();
        self
    }

    /// Allows `http.fetch` to these host patterns (intersected with the
    /// manifest's `allowed_hosts`).
    pub fn hosts(mut self, patterns: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.hosts = HostGrant::Only(patterns.into_iter().map(Into::into).collect());
        self
    }

    /// Lets `http.fetch` reach non-public addresses (loopback, private
    /// networks, link-local, ...) for this extension.
    pub fn private_network(mut self, allow: bool) -> Self {
        self.private_network = allow;
        self
    }

    /// Caps every limit by `ceilings`.
    pub fn ceilings(mut self, ceilings: ResourceLimits) -> Self {
        self.ceilings = ceilings;
        self
    }

    /// The effective grant for `manifest`: request ∩ grant, limits capped.
    pub fn resolve(&self, manifest: &ExtensionManifest) -> EffectivePolicy {
        let allowed_hosts = match &self.hosts {
            HostGrant::None => Vec::new(),
            HostGrant::AsRequested => manifest.allowed_hosts.clone(),
            // Compared as parsed patterns: `API.example.com` is
            // `api.example.com`, `::1` is `[::1]`.
            HostGrant::Only(list) => {
                let granted: Vec<HostPattern> = list
                    .iter()
                    .filter_map(|g| HostPattern::parse(g).ok())
                    .collect();
                manifest
                    .allowed_hosts
                    .iter()
                    .filter(|h| HostPattern::parse(h).is_ok_and(|h| granted.contains(&h)))
                    .cloned()
                    .collect()
            }
        };
        EffectivePolicy {
            permissions: manifest.permissions.intersection(&self.granted),
            allowed_hosts,
            limits: manifest.resource_limits.capped_by(&self.ceilings),
            enforcement: self.enforcement,
            fuel: self.fuel,
            private_network: self.private_network,
        }
    }
}

/// What one loaded extension may actually do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EffectivePolicy {
    /// Effective permissions.
    pub permissions: PermissionSet,
    /// Effective `http.fetch` host patterns.
    pub allowed_hosts: Vec<String>,
    /// Effective limits.
    pub limits: ResourceLimits,
    /// Strict or best effort.
    pub enforcement: LimitEnforcement,
    /// Instruction budget, if any.
    pub fuel: Option<u64>,
    /// Whether `http.fetch` may reach non-public addresses (the host's
    /// [`HostPolicy::private_network`]).
    #[serde(default)]
    pub private_network: bool,
}

impl fmt::Display for EffectivePolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let l = &self.limits;
        write!(
            f,
            "permissions: {}; allowed hosts: {}{}; limits: memory {} MiB, time {} ms, http {} requests, http response {} bytes, files {} MiB, output {} bytes, host calls {}; enforcement: {:?}",
            self.permissions,
            if self.allowed_hosts.is_empty() {
                "(none)".to_string()
            } else {
                self.allowed_hosts.join(", ")
            },
            if self.private_network {
                " (private networks allowed)"
            } else {
                ""
            },
            l.max_memory_mb,
            l.max_execution_ms,
            l.max_http_requests,
            l.max_http_response_bytes,
            l.max_file_size_mb,
            l.max_output_bytes,
            l.max_host_calls,
            self.enforcement
        )?;
        if let Some(fuel) = self.fuel {
            write!(f, "; fuel {fuel}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::permission::Permission;

    fn manifest() -> ExtensionManifest {
        ExtensionManifest::from_yaml(
            "extension_id: x\nversion: 1.0.0\nschema_version: '1.0'\nmetadata: {name: X}\nruntime: wasm\n\
             permissions: [vault:read, http:read]\nallowed_hosts: [api.example.com, '*.other.org']\n\
             resource_limits: {max_memory_mb: 4096, max_execution_ms: 100}\nactions: [{name: a}]\n",
            "m.yaml",
        )
        .unwrap()
    }

    #[test]
    fn default_policy_grants_nothing() {
        let eff = HostPolicy::default().resolve(&manifest());
        assert!(eff.permissions.is_empty());
        assert!(eff.allowed_hosts.is_empty());
        assert_eq!(eff.limits.max_memory_mb, 128);
        assert_eq!(eff.limits.max_execution_ms, 100);
    }

    #[test]
    fn grants_intersect_the_request() {
        let policy = HostPolicy {
            granted: [Permission::VaultRead, Permission::DataWrite]
                .into_iter()
                .collect(),
            hosts: HostGrant::Only(vec!["api.example.com".into(), "evil.com".into()]),
            ..HostPolicy::default()
        };
        let eff = policy.resolve(&manifest());
        assert_eq!(
            eff.permissions.iter().collect::<Vec<_>>(),
            vec![Permission::VaultRead]
        );
        assert_eq!(eff.allowed_hosts, vec!["api.example.com".to_string()]);
        assert!(!eff.private_network);
    }

    #[test]
    fn host_grants_compare_parsed_patterns_and_private_networks_come_from_the_host() {
        let policy = HostPolicy::allow_requested().hosts(["API.Example.com.", "*.OTHER.org"]);
        assert_eq!(
            policy.resolve(&manifest()).allowed_hosts,
            vec!["api.example.com".to_string(), "*.other.org".to_string()]
        );
        assert!(
            !HostPolicy::allow_requested()
                .resolve(&manifest())
                .private_network
        );
        let eff = HostPolicy::allow_requested()
            .private_network(true)
            .resolve(&manifest());
        assert!(eff.private_network);
        assert!(
            eff.to_string().contains("private networks allowed"),
            "{eff}"
        );
        // Policies saved before the field existed still load.
        let mut saved = serde_json::to_value(HostPolicy::default()).unwrap();
        saved.as_object_mut().unwrap().remove("private_network");
        let back: HostPolicy = serde_json::from_value(saved).unwrap();
        assert!(!back.private_network);
    }
}
