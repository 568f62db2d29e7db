//! CIDR blocks: the one parser and matcher for every "bound CIDRs" setting
//! (AppRole's `secret_id_bound_cidrs` and `cidr_list`, tokens'
//! `token_bound_cidrs`, ...).
//!
//! Invariants: a bare address is a single-host block (`10.0.0.1` is
//! `10.0.0.1/32`), as Vault reads it; an IPv4 client seen through an IPv6
//! socket (`::ffff:10.0.0.1`) is matched as the IPv4 address it is; a value
//! that is not a block or an address is refused with a 400 naming it, never
//! dropped.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::logical::LogicalError;

/// Parses blocks (empty strings are skipped); the error names the bad one.
pub fn parse(list: &[String]) -> Result<Vec<IpNet>, LogicalError> {
    list.iter()
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<IpNet>()
                .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                .map(|n| n.trunc())
                .map_err(|_| LogicalError::invalid(format!("invalid CIDR block {s:?}")))
        })
        .collect()
}

/// The blocks as Vault shows them (`10.0.0.0/8`, `10.0.0.1/32`).
pub fn to_strings(blocks: &[IpNet]) -> Vec<String> {
    blocks.iter().map(|b| b.to_string()).collect()
}

/// Is `ip` inside one of `blocks`?
pub fn contains(blocks: &[IpNet], ip: IpAddr) -> bool {
    let ip = ip.to_canonical();
    blocks.iter().any(|b| b.contains(&ip))
}

/// Is every block of `inner` inside some block of `outer`? An empty
/// `outer` bounds nothing, so anything is a subset of it.
pub fn is_subset(inner: &[IpNet], outer: &[IpNet]) -> bool {
    outer.is_empty() || inner.iter().all(|i| outer.iter().any(|o| o.contains(i)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn blocks_addresses_and_mapped_clients() {
        let b = parse(&v(&["10.0.0.0/8", "192.168.1.7", " ", "2001:db8::/32"])).unwrap();
        assert_eq!(
            to_strings(&b),
            v(&["10.0.0.0/8", "192.168.1.7/32", "2001:db8::/32"])
        );
        assert!(contains(&b, "10.9.8.7".parse().unwrap()));
        assert!(contains(&b, "::ffff:10.1.2.3".parse().unwrap()));
        assert!(contains(&b, "192.168.1.7".parse().unwrap()));
        assert!(!contains(&b, "192.168.1.8".parse().unwrap()));
        assert!(contains(&b, "2001:db8::1".parse().unwrap()));
        assert!(!contains(&b, "127.0.0.1".parse().unwrap()));
        // Host bits are cleared, as Vault stores the block.
        assert_eq!(
            to_strings(&parse(&v(&["10.1.2.3/8"])).unwrap()),
            v(&["10.0.0.0/8"])
        );
    }

    #[test]
    fn garbage_is_refused_by_name() {
        let e = parse(&v(&["10.0.0.0/8", "ten.0.0.0/8"])).unwrap_err();
        assert!(e.to_string().contains("ten.0.0.0/8"), "{e}");
        assert!(parse(&v(&["10.0.0.0/33"])).is_err());
    }

    #[test]
    fn subsets() {
        let outer = parse(&v(&["10.0.0.0/8", "127.0.0.1"])).unwrap();
        assert!(is_subset(
            &parse(&v(&["10.1.0.0/16", "127.0.0.1/32"])).unwrap(),
            &outer
        ));
        assert!(!is_subset(&parse(&v(&["10.0.0.0/7"])).unwrap(), &outer));
        assert!(!is_subset(&parse(&v(&["11.0.0.0/16"])).unwrap(), &outer));
        assert!(is_subset(&parse(&v(&["11.0.0.0/16"])).unwrap(), &[]));
    }
}
