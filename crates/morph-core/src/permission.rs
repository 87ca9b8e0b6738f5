//! The ten permissions an extension may request. Deny by default: an
//! operation runs only when its permission is in the effective set.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// One capability permission, written `area:verb` in manifests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Permission {
    /// `http:read`: GET and HEAD requests.
    HttpRead,
    /// `http:write`: every other HTTP method.
    HttpWrite,
    /// `vault:read`: read the extension's own secrets.
    VaultRead,
    /// `vault:write`: write the extension's own secrets.
    VaultWrite,
    /// `event:emit`: emit events declared in the manifest.
    EventEmit,
    /// `event:listen`: receive events from other extensions.
    EventListen,
    /// `fs:read`: read files in the extension's sandbox directory.
    FsRead,
    /// `fs:write`: write and delete files in the sandbox directory.
    FsWrite,
    /// `data:read`: read the extension's key/value namespace.
    DataRead,
    /// `data:write`: write the extension's key/value namespace.
    DataWrite,
}

impl Permission {
    /// Every permission, in manifest order.
    pub const ALL: [Permission; 10] = [
        Permission::HttpRead,
        Permission::HttpWrite,
        Permission::VaultRead,
        Permission::VaultWrite,
        Permission::EventEmit,
        Permission::EventListen,
        Permission::FsRead,
        Permission::FsWrite,
        Permission::DataRead,
        Permission::DataWrite,
    ];

    /// The manifest spelling, e.g. `"vault:read"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Permission::HttpRead => "http:read",
            Permission::HttpWrite => "http:write",
            Permission::VaultRead => "vault:read",
            Permission::VaultWrite => "vault:write",
            Permission::EventEmit => "event:emit",
            Permission::EventListen => "event:listen",
            Permission::FsRead => "fs:read",
            Permission::FsWrite => "fs:write",
            Permission::DataRead => "data:read",
            Permission::DataWrite => "data:write",
        }
    }
}

/// The error for a permission string that is not one of the ten.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown permission `{0}` (expected one of: http:read, http:write, vault:read, vault:write, event:emit, event:listen, fs:read, fs:write, data:read, data:write)"
)]
pub struct UnknownPermission(pub String);

impl FromStr for Permission {
    type Err = UnknownPermission;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Permission::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| UnknownPermission(s.to_string()))
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Permission {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Permission {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A set of permissions. The empty set (the default) allows nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PermissionSet(BTreeSet<Permission>);

impl PermissionSet {
    /// The empty set: nothing is allowed.
    pub fn none() -> Self {
        Self::default()
    }

    /// All ten permissions.
    pub fn all() -> Self {
        Permission::ALL.into_iter().collect()
    }

    /// Whether `p` is in the set.
    pub fn contains(&self, p: Permission) -> bool {
        self.0.contains(&p)
    }

    /// Adds `p`.
    pub fn insert(&mut self, p: Permission) {
        self.0.insert(p);
    }

    /// The permissions in both sets.
    pub fn intersection(&self, other: &PermissionSet) -> PermissionSet {
        self.0.intersection(&other.0).copied().collect()
    }

    /// Iterates in a stable order.
    pub fn iter(&self) -> impl Iterator<Item = Permission> + '_ {
        self.0.iter().copied()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl FromIterator<Permission> for PermissionSet {
    fn from_iter<I: IntoIterator<Item = Permission>>(iter: I) -> Self {
        PermissionSet(iter.into_iter().collect())
    }
}

impl fmt::Display for PermissionSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("(none)");
        }
        let names: Vec<&str> = self.iter().map(Permission::as_str).collect();
        f.write_str(&names.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_ten_and_rejects_others() {
        for p in Permission::ALL {
            assert_eq!(p.as_str().parse::<Permission>(), Ok(p));
        }
        let err = "http:delete".parse::<Permission>().unwrap_err();
        assert!(err.to_string().contains("`http:delete`"));
    }

    #[test]
    fn intersection_is_deny_by_default() {
        let requested: PermissionSet = [Permission::HttpRead, Permission::VaultRead]
            .into_iter()
            .collect();
        let granted: PermissionSet = [Permission::VaultRead].into_iter().collect();
        let effective = requested.intersection(&granted);
        assert!(effective.contains(Permission::VaultRead));
        assert!(!effective.contains(Permission::HttpRead));
        assert!(PermissionSet::none().intersection(&requested).is_empty());
    }
}
