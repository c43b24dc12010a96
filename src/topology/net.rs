//! IPv4 subnets, small enough to keep rather than pull in a crate, and
//! the stable hash that spreads names over addresses and bridge names.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use serde::Serialize;

/// An IPv4 network in CIDR form. The address is always the network address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv4Net {
    addr: Ipv4Addr,
    prefix: u8,
}

/// FNV-1a, 64 bits: small, stable across releases and platforms, good
/// enough to spread names (over MACs, bridge names, addresses); whatever
/// uses it must still cope with a collision.
pub fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Why a CIDR string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CidrError {
    /// No `/prefix` part.
    #[error("`{0}` has no prefix length; write it as ADDRESS/PREFIX, such as 10.210.0.0/24")]
    NoPrefix(String),
    /// The address part is not an IPv4 address.
    #[error("`{0}` is not an IPv4 address")]
    BadAddress(String),
    /// The prefix is not a number from 0 to 32.
    #[error("`{0}` is not a prefix length from 0 to 32")]
    BadPrefix(String),
    /// Host bits are set, as in `10.0.0.5/24`.
    #[error("`{given}` has host bits set; the network address is {network}")]
    HostBits { given: String, network: Ipv4Net },
    /// The network is too small to hold a gateway and a host.
    #[error("a /{0} network has no room for a gateway and a node; use /30 or larger")]
    TooSmall(u8),
}

impl Ipv4Net {
    pub fn addr(&self) -> Ipv4Addr {
        self.addr
    }

    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    fn mask(&self) -> u32 {
        if self.prefix == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(self.prefix))
        }
    }

    /// The broadcast address (the last address of the network).
    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) | !self.mask())
    }

    /// The first address after the network address.
    pub fn first_host(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr).wrapping_add(1))
    }

    /// The first address of the upper half: where a VM network's DHCP
    /// range starts, the lower half being left for addresses chosen in the
    /// file (and for containers on a shared network).
    pub fn upper_half(&self) -> Ipv4Addr {
        let first = u32::from(self.addr);
        let last = u32::from(self.broadcast());
        Ipv4Addr::from(first + (last - first) / 2 + 1)
    }

    /// The netmask, such as 255.255.255.0.
    pub fn netmask(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.mask())
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask() == u32::from(self.addr)
    }

    pub fn overlaps(&self, other: &Ipv4Net) -> bool {
        self.contains(other.addr) || other.contains(self.addr)
    }
}

impl FromStr for Ipv4Net {
    type Err = CidrError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let Some((addr, prefix)) = s.split_once('/') else {
            return Err(if s.parse::<Ipv4Addr>().is_ok() {
                CidrError::NoPrefix(s.to_string())
            } else {
                CidrError::BadAddress(s.to_string())
            });
        };
        let addr: Ipv4Addr = addr
            .parse()
            .map_err(|_| CidrError::BadAddress(addr.to_string()))?;
        let prefix: u8 = prefix
            .parse()
            .ok()
            .filter(|p| *p <= 32 && prefix.chars().all(|c| c.is_ascii_digit()))
            .ok_or_else(|| CidrError::BadPrefix(prefix.to_string()))?;
        let net = Ipv4Net { addr, prefix };
        let network = Ipv4Net {
            addr: Ipv4Addr::from(u32::from(addr) & net.mask()),
            prefix,
        };
        if network.addr != addr {
            return Err(CidrError::HostBits {
                given: s.to_string(),
                network,
            });
        }
        // A /30 holds exactly a gateway and one node; anything smaller cannot.
        if prefix > 30 {
            return Err(CidrError::TooSmall(prefix));
        }
        Ok(net)
    }
}

impl fmt::Display for Ipv4Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl Serialize for Ipv4Net {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_upper_half_and_the_name_hash() {
        let net: Ipv4Net = "10.1.2.0/24".parse().unwrap();
        assert_eq!(net.upper_half(), Ipv4Addr::new(10, 1, 2, 128));
        let small: Ipv4Net = "10.1.2.0/30".parse().unwrap();
        assert_eq!(small.upper_half(), Ipv4Addr::new(10, 1, 2, 2));
        // The published FNV-1a test vectors: names keep their MACs,
        // bridges and addresses from one release to the next.
        assert_eq!(fnv1a(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a("a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn parses_and_computes_addresses() {
        let net: Ipv4Net = "10.210.0.0/24".parse().unwrap();
        assert_eq!(net.first_host(), Ipv4Addr::new(10, 210, 0, 1));
        assert_eq!(net.broadcast(), Ipv4Addr::new(10, 210, 0, 255));
        assert_eq!(net.netmask(), Ipv4Addr::new(255, 255, 255, 0));
        assert!(net.contains(Ipv4Addr::new(10, 210, 0, 7)));
        assert!(!net.contains(Ipv4Addr::new(10, 210, 1, 7)));
    }

    #[test]
    fn refuses_bad_cidrs() {
        for bad in [
            "10.0.0.0",
            "10.0.0/24",
            "10.0.0.0/33",
            "10.0.0.0/-1",
            "10.0.0.5/24",
            "10.0.0.0/31",
            "x/8",
        ] {
            assert!(bad.parse::<Ipv4Net>().is_err(), "{bad}");
        }
    }

    #[test]
    fn overlap_is_symmetric() {
        let a: Ipv4Net = "10.0.0.0/16".parse().unwrap();
        let b: Ipv4Net = "10.0.5.0/24".parse().unwrap();
        let c: Ipv4Net = "10.1.0.0/24".parse().unwrap();
        assert!(a.overlaps(&b) && b.overlaps(&a));
        assert!(!a.overlaps(&c) && !c.overlaps(&a));
    }
}
