//! Which IP addresses a customer-given URL may reach: only public unicast ones. Everything a
//! server could use to reach itself, its VPC, the cloud metadata service or a range that is
//! not routed on the internet is refused, including IPv4 addresses hidden inside IPv6 forms
//! (IPv4-mapped, IPv4-compatible, NAT64, 6to4, Teredo) — the kernel or a gateway would turn
//! those back into the IPv4 destination.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Why an address is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockKind {
    /// `0.0.0.0/8`, `::`: "this host"; Linux connects `0.0.0.0` to itself.
    Unspecified,
    /// `127.0.0.0/8`, `::1`.
    Loopback,
    /// RFC 1918: `10/8`, `172.16/12`, `192.168/16`.
    Private,
    /// `169.254/16` (incl. the metadata service `169.254.169.254`), `fe80::/10`.
    LinkLocal,
    /// Carrier-grade NAT `100.64/10` (RFC 6598).
    SharedAddressSpace,
    /// `224/4`, `ff00::/8`.
    Multicast,
    /// `255.255.255.255`.
    Broadcast,
    /// `192.0.2/24`, `198.51.100/24`, `203.0.113/24`, `2001:db8::/32`, `3fff::/20`.
    Documentation,
    /// `198.18/15`, `2001:2::/48`.
    Benchmarking,
    /// IETF-reserved or not globally routed: `192.0.0/24`, `192.88.99/24`, `240/4`, ORCHID,
    /// local-use NAT64 and any IPv6 outside global unicast `2000::/3`.
    Reserved,
    /// Unique local `fc00::/7` (IPv6's private ranges).
    UniqueLocal,
    /// Deprecated site-local `fec0::/10`.
    SiteLocal,
    /// Discard-only `100::/64`.
    DiscardOnly,
}

impl BlockKind {
    /// A short human name.
    pub fn as_str(self) -> &'static str {
        match self {
            BlockKind::Unspecified => "unspecified",
            BlockKind::Loopback => "loopback",
            BlockKind::Private => "private",
            BlockKind::LinkLocal => "link-local",
            BlockKind::SharedAddressSpace => "shared address space (carrier-grade NAT)",
            BlockKind::Multicast => "multicast",
            BlockKind::Broadcast => "broadcast",
            BlockKind::Documentation => "documentation",
            BlockKind::Benchmarking => "benchmarking",
            BlockKind::Reserved => "reserved",
            BlockKind::UniqueLocal => "unique local",
            BlockKind::SiteLocal => "site-local",
            BlockKind::DiscardOnly => "discard-only",
        }
    }
}

/// The IPv6 forms that carry an IPv4 address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Embedding {
    /// `::ffff:a.b.c.d`.
    Mapped,
    /// `::a.b.c.d` (deprecated).
    Compatible,
    /// `64:ff9b::/96` (RFC 6052).
    Nat64,
    /// `2002:aabb:ccdd::/48` (RFC 3056).
    SixToFour,
    /// `2001:0::/32`, client address stored inverted (RFC 4380).
    Teredo,
}

impl Embedding {
    fn as_str(self) -> &'static str {
        match self {
            Embedding::Mapped => "IPv4-mapped",
            Embedding::Compatible => "IPv4-compatible",
            Embedding::Nat64 => "NAT64",
            Embedding::SixToFour => "6to4",
            Embedding::Teredo => "Teredo",
        }
    }
}

/// Why an address is refused, and the IPv4 address it hid, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockReason {
    /// The range the (embedded) address falls in.
    pub kind: BlockKind,
    /// Set when an IPv6 address was refused for the IPv4 address inside it.
    pub embedded: Option<(Embedding, Ipv4Addr)>,
}

impl fmt::Display for BlockReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.kind.as_str())?;
        if let Some((via, v4)) = self.embedded {
            write!(f, " ({v4} inside an {} address)", via.as_str())?;
        }
        Ok(())
    }
}

impl From<BlockKind> for BlockReason {
    fn from(kind: BlockKind) -> Self {
        BlockReason {
            kind,
            embedded: None,
        }
    }
}

/// `None` when `ip` is a public unicast address a customer URL may reach, otherwise why not.
/// The allowlist of [`super::GuardConfig`] is applied by the caller, not here.
pub fn classify(ip: IpAddr) -> Option<BlockReason> {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4).map(BlockReason::from),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn in_v4(ip: Ipv4Addr, net: [u8; 4], prefix: u32) -> bool {
    let mask = u32::MAX.checked_shl(32 - prefix).unwrap_or(0);
    u32::from(ip) & mask == u32::from(Ipv4Addr::from(net)) & mask
}

fn in_v6(ip: Ipv6Addr, net: [u16; 8], prefix: u32) -> bool {
    let mask = u128::MAX.checked_shl(128 - prefix).unwrap_or(0);
    u128::from(ip) & mask == u128::from(Ipv6Addr::from(net)) & mask
}

/// Table of refused IPv4 ranges. Ordered so the more telling reason wins.
const V4_BLOCKED: &[([u8; 4], u32, BlockKind)] = &[
    ([0, 0, 0, 0], 8, BlockKind::Unspecified),
    ([127, 0, 0, 0], 8, BlockKind::Loopback),
    ([10, 0, 0, 0], 8, BlockKind::Private),
    ([172, 16, 0, 0], 12, BlockKind::Private),
    ([192, 168, 0, 0], 16, BlockKind::Private),
    ([169, 254, 0, 0], 16, BlockKind::LinkLocal),
    ([100, 64, 0, 0], 10, BlockKind::SharedAddressSpace),
    ([192, 0, 0, 0], 24, BlockKind::Reserved),
    ([192, 0, 2, 0], 24, BlockKind::Documentation),
    ([198, 51, 100, 0], 24, BlockKind::Documentation),
    ([203, 0, 113, 0], 24, BlockKind::Documentation),
    ([198, 18, 0, 0], 15, BlockKind::Benchmarking),
    ([192, 88, 99, 0], 24, BlockKind::Reserved),
    ([224, 0, 0, 0], 4, BlockKind::Multicast),
    ([255, 255, 255, 255], 32, BlockKind::Broadcast),
    ([240, 0, 0, 0], 4, BlockKind::Reserved),
];

fn classify_v4(ip: Ipv4Addr) -> Option<BlockKind> {
    V4_BLOCKED
        .iter()
        .find(|(net, prefix, _)| in_v4(ip, *net, *prefix))
        .map(|(_, _, kind)| *kind)
}

/// Refused IPv6 ranges that carry no IPv4 address.
const V6_BLOCKED: &[([u16; 8], u32, BlockKind)] = &[
    ([0, 0, 0, 0, 0, 0, 0, 0], 128, BlockKind::Unspecified),
    ([0, 0, 0, 0, 0, 0, 0, 1], 128, BlockKind::Loopback),
    ([0x100, 0, 0, 0, 0, 0, 0, 0], 64, BlockKind::DiscardOnly),
    ([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10, BlockKind::LinkLocal),
    ([0xfec0, 0, 0, 0, 0, 0, 0, 0], 10, BlockKind::SiteLocal),
    ([0xfc00, 0, 0, 0, 0, 0, 0, 0], 7, BlockKind::UniqueLocal),
    ([0xff00, 0, 0, 0, 0, 0, 0, 0], 8, BlockKind::Multicast),
    (
        [0x2001, 0xdb8, 0, 0, 0, 0, 0, 0],
        32,
        BlockKind::Documentation,
    ),
    ([0x3fff, 0, 0, 0, 0, 0, 0, 0], 20, BlockKind::Documentation),
    ([0x2001, 0x2, 0, 0, 0, 0, 0, 0], 48, BlockKind::Benchmarking),
    ([0x2001, 0x10, 0, 0, 0, 0, 0, 0], 28, BlockKind::Reserved),
    ([0x2001, 0x20, 0, 0, 0, 0, 0, 0], 28, BlockKind::Reserved),
    ([0x64, 0xff9b, 1, 0, 0, 0, 0, 0], 48, BlockKind::Reserved),
];

/// The IPv4 address an IPv6 address stands for, if it is one of the embedding forms.
fn embedded_v4(ip: Ipv6Addr) -> Option<(Embedding, Ipv4Addr)> {
    let bits = u128::from(ip);
    let low32 = Ipv4Addr::from(bits as u32);
    if in_v6(ip, [0, 0, 0, 0, 0, 0xffff, 0, 0], 96) {
        Some((Embedding::Mapped, low32))
    } else if in_v6(ip, [0; 8], 96) && bits > 1 {
        // `::` and `::1` are their own IPv6 addresses, not IPv4-compatible ones.
        Some((Embedding::Compatible, low32))
    } else if in_v6(ip, [0x64, 0xff9b, 0, 0, 0, 0, 0, 0], 96) {
        Some((Embedding::Nat64, low32))
    } else if in_v6(ip, [0x2002, 0, 0, 0, 0, 0, 0, 0], 16) {
        Some((Embedding::SixToFour, Ipv4Addr::from((bits >> 80) as u32)))
    } else if in_v6(ip, [0x2001, 0, 0, 0, 0, 0, 0, 0], 32) {
        Some((Embedding::Teredo, Ipv4Addr::from(!(bits as u32))))
    } else {
        None
    }
}

fn classify_v6(ip: Ipv6Addr) -> Option<BlockReason> {
    if let Some((via, v4)) = embedded_v4(ip) {
        return classify_v4(v4).map(|kind| BlockReason {
            kind,
            embedded: Some((via, v4)),
        });
    }
    if let Some((_, _, kind)) = V6_BLOCKED
        .iter()
        .find(|(net, prefix, _)| in_v6(ip, *net, *prefix))
    {
        return Some((*kind).into());
    }
    // Only 2000::/3 is allocated for global unicast; anything else is unrouted today.
    if !in_v6(ip, [0x2000, 0, 0, 0, 0, 0, 0, 0], 3) {
        return Some(BlockKind::Reserved.into());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(s: &str) -> Option<BlockKind> {
        classify(s.parse().expect("test address parses")).map(|r| r.kind)
    }

    #[test]
    fn ipv4_table() {
        use BlockKind::*;
        let cases: &[(&str, Option<BlockKind>)] = &[
            ("0.0.0.0", Some(Unspecified)),
            ("0.1.2.3", Some(Unspecified)),
            ("127.0.0.1", Some(Loopback)),
            ("127.255.255.254", Some(Loopback)),
            ("10.0.0.1", Some(Private)),
            ("172.16.0.1", Some(Private)),
            ("172.31.255.255", Some(Private)),
            ("192.168.1.1", Some(Private)),
            ("169.254.169.254", Some(LinkLocal)),
            ("169.254.0.1", Some(LinkLocal)),
            ("100.64.0.1", Some(SharedAddressSpace)),
            ("100.127.255.255", Some(SharedAddressSpace)),
            ("224.0.0.1", Some(Multicast)),
            ("239.255.255.250", Some(Multicast)),
            ("255.255.255.255", Some(Broadcast)),
            ("240.0.0.1", Some(Reserved)),
            ("192.0.0.8", Some(Reserved)),
            ("192.88.99.1", Some(Reserved)),
            ("192.0.2.1", Some(Documentation)),
            ("198.51.100.7", Some(Documentation)),
            ("203.0.113.9", Some(Documentation)),
            ("198.18.0.1", Some(Benchmarking)),
            ("198.19.255.255", Some(Benchmarking)),
            // Public neighbours of the blocked ranges stay reachable.
            ("8.8.8.8", None),
            ("1.1.1.1", None),
            ("172.15.255.255", None),
            ("172.32.0.0", None),
            ("100.63.255.255", None),
            ("100.128.0.0", None),
            ("169.253.255.255", None),
            ("192.0.1.255", None),
            ("198.17.255.255", None),
            ("198.20.0.0", None),
            ("11.0.0.1", None),
            ("223.255.255.255", None),
        ];
        for (addr, expected) in cases {
            assert_eq!(kind(addr), *expected, "{addr}");
        }
    }

    #[test]
    fn ipv6_table() {
        use BlockKind::*;
        let cases: &[(&str, Option<BlockKind>)] = &[
            ("::", Some(Unspecified)),
            ("::1", Some(Loopback)),
            ("fe80::1", Some(LinkLocal)),
            ("febf::1", Some(LinkLocal)),
            ("fec0::1", Some(SiteLocal)),
            ("fc00::1", Some(UniqueLocal)),
            ("fd12:3456::1", Some(UniqueLocal)),
            ("ff02::1", Some(Multicast)),
            ("100::1", Some(DiscardOnly)),
            ("2001:db8::1", Some(Documentation)),
            ("3fff::1", Some(Documentation)),
            ("2001:2::1", Some(Benchmarking)),
            ("2001:10::1", Some(Reserved)),
            ("2001:20::1", Some(Reserved)),
            ("64:ff9b:1::1", Some(Reserved)),
            ("1::1", Some(Reserved)),
            ("4000::1", Some(Reserved)),
            // IPv4 inside IPv6: judged by the IPv4 address.
            ("::ffff:127.0.0.1", Some(Loopback)),
            ("::ffff:169.254.169.254", Some(LinkLocal)),
            ("::ffff:10.1.2.3", Some(Private)),
            ("::127.0.0.1", Some(Loopback)),
            ("::10.0.0.1", Some(Private)),
            ("64:ff9b::7f00:1", Some(Loopback)),
            ("64:ff9b::a9fe:a9fe", Some(LinkLocal)),
            ("2002:7f00:1::", Some(Loopback)),
            ("2002:a00:1::1", Some(Private)),
            // Teredo stores the client inverted: !127.0.0.1 = 80ff:fffe.
            ("2001:0:4136:e378:8000:63bf:80ff:fffe", Some(Loopback)),
            // Public.
            ("2606:4700::1111", None),
            ("2001:4860:4860::8888", None),
            ("2a00:1450:4001:81c::200e", None),
            ("::ffff:8.8.8.8", None),
            ("64:ff9b::808:808", None),
            ("2002:808:808::1", None),
        ];
        for (addr, expected) in cases {
            assert_eq!(kind(addr), *expected, "{addr}");
        }
    }

    #[test]
    fn embedded_reason_names_the_ipv4_address() {
        let reason = classify("::ffff:127.0.0.1".parse().unwrap()).unwrap();
        assert_eq!(
            reason.embedded,
            Some((Embedding::Mapped, Ipv4Addr::LOCALHOST))
        );
        assert_eq!(
            reason.to_string(),
            "loopback (127.0.0.1 inside an IPv4-mapped address)"
        );
    }
}
