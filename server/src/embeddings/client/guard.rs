//! Which addresses a shared instance may call for an account: public ones only (not this
//! machine, its networks, or an IPv6 address that stands for such an IPv4 one), judged on
//! literal URLs and on every name resolution.

use std::net::{IpAddr, SocketAddr};

/// Whether an address is on the public internet (not this machine, its network, or
/// addresses that are never a server's).
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b)))
        }
        IpAddr::V6(v6) => match embedded_ipv4(v6) {
            Some(v4) => is_public(IpAddr::V4(v4)),
            None => {
                let segments = v6.segments();
                let first = segments[0];
                !(v6.is_loopback()
                    || v6.is_unspecified()
                    || v6.is_multicast()
                    || (first & 0xfe00) == 0xfc00
                    || (first & 0xffc0) == 0xfe80
                    || (first & 0xffc0) == 0xfec0
                    // The rest of ::/96 (IPv4-compatible, deprecated) and ::ffff:0:0/96
                    // (IPv4-translated) with nothing public in them; 64:ff9b:1::/48 (local
                    // NAT64); 100::/64 (discard); 2001:db8::/32 (documentation).
                    || segments[..5] == [0; 5]
                    || (first == 0x64 && segments[1] == 0xff9b && segments[2] == 1)
                    || segments[..4] == [0x100, 0, 0, 0]
                    || (first == 0x2001 && segments[1] == 0xdb8)
                    // Teredo (2001::/32) hides the IPv4 address it reaches.
                    || (first == 0x2001 && segments[1] == 0))
            }
        },
    }
}

/// The IPv4 address an IPv6 address stands for, where one does: IPv4-mapped
/// (`::ffff:a.b.c.d`), IPv4-compatible (`::a.b.c.d`), IPv4-translated (`::ffff:0:a.b.c.d`),
/// NAT64's well-known prefix (`64:ff9b::a.b.c.d`) and 6to4 (`2002:aabb:ccdd::`). A request
/// to any of them reaches that IPv4 address, so it is judged as that address.
pub(super) fn embedded_ipv4(v6: std::net::Ipv6Addr) -> Option<std::net::Ipv4Addr> {
    let s = v6.segments();
    let from = |high: u16, low: u16| std::net::Ipv4Addr::from((u32::from(high) << 16) | u32::from(low));
    match s {
        [0, 0, 0, 0, 0, 0xffff, high, low] => Some(from(high, low)),
        [0, 0, 0, 0, 0xffff, 0, high, low] => Some(from(high, low)),
        [0x64, 0xff9b, 0, 0, 0, 0, high, low] => Some(from(high, low)),
        [0x2002, high, low, ..] => Some(from(high, low)),
        // `::` and `::1` are this machine's own IPv6 addresses, not IPv4 ones.
        [0, 0, 0, 0, 0, 0, high, low] if high != 0 => Some(from(high, low)),
        _ => None,
    }
}

/// A resolver that answers public addresses only (names that resolve inside are refused
/// at connection time, whatever their DNS says later).
pub(super) struct PublicOnly;

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_string();
        Box::pin(async move {
            let found = tokio::net::lookup_host((host.as_str(), 0)).await?;
            let public: Vec<SocketAddr> = found.filter(|address| is_public(address.ip())).collect();
            if public.is_empty() {
                return Err(format!("{host} resolves to no public address").into());
            }
            Ok(Box::new(public.into_iter()) as reqwest::dns::Addrs)
        })
    }
}
