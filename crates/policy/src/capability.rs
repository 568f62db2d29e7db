//! Capabilities (what a policy grants on a path) and operations (what a
//! request does), and the mapping between the two.

use std::fmt;
use std::str::FromStr;

use crate::PolicyError;

/// One capability a path rule can grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Capability {
    Create,
    Read,
    Update,
    Patch,
    Delete,
    List,
    /// Access to root-protected paths, on top of the operation's capability.
    Sudo,
    /// Explicit denial; it overrides every other capability of the same rule.
    Deny,
    /// Subscribing to events.
    Subscribe,
    /// Recovering data from a loaded snapshot.
    Recover,
}

impl Capability {
    /// Every capability, in declaration order.
    pub const ALL: [Capability; 10] = [
        Capability::Create,
        Capability::Read,
        Capability::Update,
        Capability::Patch,
        Capability::Delete,
        Capability::List,
        Capability::Sudo,
        Capability::Deny,
        Capability::Subscribe,
        Capability::Recover,
    ];

    /// The name used in policy text and API responses.
    pub fn as_str(self) -> &'static str {
        match self {
            Capability::Create => "create",
            Capability::Read => "read",
            Capability::Update => "update",
            Capability::Patch => "patch",
            Capability::Delete => "delete",
            Capability::List => "list",
            Capability::Sudo => "sudo",
            Capability::Deny => "deny",
            Capability::Subscribe => "subscribe",
            Capability::Recover => "recover",
        }
    }

    /// Parses a capability name exactly as written in a policy (case
    /// sensitive, as in Vault).
    pub fn parse(name: &str) -> Option<Capability> {
        Capability::ALL.into_iter().find(|c| c.as_str() == name)
    }

    fn bit(self) -> u16 {
        1 << (self as u16)
    }
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of capabilities (a bitmap).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Capabilities(u16);

impl Capabilities {
    /// The empty set.
    pub const fn empty() -> Capabilities {
        Capabilities(0)
    }

    /// The set holding only `deny`.
    pub fn deny() -> Capabilities {
        Capabilities(Capability::Deny.bit())
    }

    pub fn contains(self, capability: Capability) -> bool {
        self.0 & capability.bit() != 0
    }

    pub fn insert(&mut self, capability: Capability) {
        self.0 |= capability.bit();
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// `true` when the set holds `deny` (which then is its only member once
    /// normalized by the parser or the ACL merge).
    pub fn is_deny(self) -> bool {
        self.contains(Capability::Deny)
    }

    /// The union of two sets.
    pub fn union(self, other: Capabilities) -> Capabilities {
        Capabilities(self.0 | other.0)
    }

    /// Members in declaration order.
    pub fn iter(self) -> impl Iterator<Item = Capability> {
        Capability::ALL
            .into_iter()
            .filter(move |c| self.contains(*c))
    }

    /// Member names sorted alphabetically (the order Vault's API returns).
    pub fn sorted_names(self) -> Vec<String> {
        let mut names: Vec<String> = self.iter().map(|c| c.as_str().to_string()).collect();
        names.sort();
        names
    }
}

impl FromIterator<Capability> for Capabilities {
    fn from_iter<I: IntoIterator<Item = Capability>>(iter: I) -> Self {
        let mut set = Capabilities::empty();
        for c in iter {
            set.insert(c);
        }
        set
    }
}

/// What a request does. The HTTP layer maps verbs onto these (GET=read,
/// LIST=list, POST/PUT=create or update, DELETE=delete, PATCH=patch).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    Read,
    List,
    Create,
    Update,
    Patch,
    Delete,
    /// Path help; always allowed for a valid token, as in Vault.
    Help,
    /// Lease renewal; needs `update`.
    Renew,
    /// Lease revocation; needs `update`.
    Revoke,
    /// Rollback; needs `update`.
    Rollback,
    /// Snapshot recovery; needs `recover`.
    Recover,
}

impl Operation {
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Read => "read",
            Operation::List => "list",
            Operation::Create => "create",
            Operation::Update => "update",
            Operation::Patch => "patch",
            Operation::Delete => "delete",
            Operation::Help => "help",
            Operation::Renew => "renew",
            Operation::Revoke => "revoke",
            Operation::Rollback => "rollback",
            Operation::Recover => "recover",
        }
    }

    /// The capability a rule must grant for this operation; `None` for help.
    pub fn required_capability(self) -> Option<Capability> {
        match self {
            Operation::Read => Some(Capability::Read),
            Operation::List => Some(Capability::List),
            Operation::Create => Some(Capability::Create),
            Operation::Update | Operation::Renew | Operation::Revoke | Operation::Rollback => {
                Some(Capability::Update)
            }
            Operation::Patch => Some(Capability::Patch),
            Operation::Delete => Some(Capability::Delete),
            Operation::Recover => Some(Capability::Recover),
            Operation::Help => None,
        }
    }

    /// Whether parameter constraints (`required_parameters`,
    /// `allowed_parameters`, `denied_parameters`) apply to this operation:
    /// exactly the operations Vault's `AllowOperation` checks — `read` (the
    /// query parameters of a GET), `create`, `update`, `patch` and
    /// `recover`. `list` (even with query parameters such as `after`),
    /// `delete`, `help`, `renew`, `revoke` and `rollback` are not checked.
    pub fn checks_parameters(self) -> bool {
        matches!(
            self,
            Operation::Read
                | Operation::Create
                | Operation::Update
                | Operation::Patch
                | Operation::Recover
        )
    }
}

impl FromStr for Operation {
    type Err = PolicyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "read" => Operation::Read,
            "list" => Operation::List,
            "create" => Operation::Create,
            "update" => Operation::Update,
            "patch" => Operation::Patch,
            "delete" => Operation::Delete,
            "help" => Operation::Help,
            "renew" => Operation::Renew,
            "revoke" => Operation::Revoke,
            "rollback" => Operation::Rollback,
            "recover" => Operation::Recover,
            other => return Err(PolicyError::UnknownOperation(other.to_string())),
        })
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capability_names_round_trip() {
        for c in Capability::ALL {
            assert_eq!(Capability::parse(c.as_str()), Some(c));
        }
        assert_eq!(Capability::parse("Read"), None);
        assert_eq!(Capability::parse("write"), None);
    }

    #[test]
    fn set_operations() {
        let set: Capabilities = [Capability::Update, Capability::Read, Capability::Sudo]
            .into_iter()
            .collect();
        assert!(set.contains(Capability::Read));
        assert!(!set.contains(Capability::List));
        assert_eq!(set.sorted_names(), vec!["read", "sudo", "update"]);
        assert!(Capabilities::deny().is_deny());
        assert!(Capabilities::empty().is_empty());
    }

    #[test]
    fn operations_map_to_capabilities() {
        assert_eq!(
            Operation::Renew.required_capability(),
            Some(Capability::Update)
        );
        assert_eq!(Operation::Help.required_capability(), None);
        assert_eq!("patch".parse::<Operation>().unwrap(), Operation::Patch);
        assert!("write".parse::<Operation>().is_err());
        for op in ["read", "create", "update", "patch", "recover"] {
            assert!(op.parse::<Operation>().unwrap().checks_parameters(), "{op}");
        }
        for op in ["list", "delete", "help", "renew", "revoke", "rollback"] {
            assert!(
                !op.parse::<Operation>().unwrap().checks_parameters(),
                "{op}"
            );
        }
    }
}
