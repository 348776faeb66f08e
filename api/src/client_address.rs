//! The client's address, which login throttling counts by: the TCP peer's,
//! or the one a trusted proxy forwarded (`COUNTERSIGN_TRUSTED_PROXIES`).
//!
//! Forwarded addresses are read from the right, the hop nearest to us first,
//! and skipped while they are trusted proxies themselves; the first address
//! that is not a trusted proxy is the client. Anything further left was
//! written by the client and is not believed. `X-Forwarded-For` is read when
//! present, else `Forwarded` (RFC 7239); a proxy that writes only `Forwarded`
//! must drop any `X-Forwarded-For` that clients send.

use std::future::{Ready, ready};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use actix_web::dev::Payload;
use actix_web::http::header::{self, HeaderMap, HeaderName};
use actix_web::{FromRequest, HttpRequest, web};
use ipnet::IpNet;

use crate::hardening::HttpSettings;
use crate::problem::ApiError;

/// The address of the client that sent the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddress(pub IpAddr);

impl FromRequest for ClientAddress {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let peer = req
            .peer_addr()
            .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |a| a.ip());
        let trusted = req
            .app_data::<web::Data<HttpSettings>>()
            .map_or(&[][..], |s| &s.trusted_proxies[..]);
        ready(Ok(ClientAddress(client_address(
            peer,
            req.headers(),
            trusted,
        ))))
    }
}

/// The client's address: `peer`, or what trusted proxies forwarded.
pub fn client_address(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    let mut client = peer.to_canonical();
    if !is_trusted(&client) {
        return client;
    }
    for hop in forwarded_hops(headers).into_iter().rev() {
        // An obfuscated or malformed hop hides what lies beyond it.
        let Some(ip) = hop else { break };
        client = ip.to_canonical();
        if !is_trusted(&client) {
            break;
        }
    }
    client
}

/// The forwarded addresses, left (farthest) to right (nearest); `None` for a
/// hop that names no address.
fn forwarded_hops(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    let values = |name: &HeaderName| -> Vec<String> {
        headers
            .get_all(name)
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|v| v.trim().to_owned())
            .collect()
    };
    let xff = values(&HeaderName::from_static("x-forwarded-for"));
    if !xff.is_empty() {
        return xff.iter().map(|node| node_address(node)).collect();
    }
    values(&header::FORWARDED)
        .iter()
        .map(|element| {
            element
                .split(';')
                .filter_map(|pair| pair.trim().split_once('='))
                .find(|(name, _)| name.trim().eq_ignore_ascii_case("for"))
                .and_then(|(_, node)| node_address(node))
        })
        .collect()
}

/// The address of a node: `192.0.2.1`, `192.0.2.1:4711`, `2001:db8::1`,
/// `"[2001:db8::1]:4711"`; `None` for `unknown`, `_hidden` and garbage.
fn node_address(node: &str) -> Option<IpAddr> {
    let node = node.trim().trim_matches('"');
    if let Some(rest) = node.strip_prefix('[') {
        let (v6, _) = rest.split_once(']')?;
        return v6.parse::<Ipv6Addr>().ok().map(IpAddr::V6);
    }
    node.parse::<IpAddr>().ok().or_else(|| {
        let (v4, port) = node.rsplit_once(':')?;
        port.parse::<u16>().ok()?;
        v4.parse::<Ipv4Addr>().ok().map(IpAddr::V4)
    })
}

/// Parses `COUNTERSIGN_TRUSTED_PROXIES`: comma-separated CIDR blocks or
/// single addresses.
pub fn parse_trusted_proxies(list: &str) -> Result<Vec<IpNet>, String> {
    list.split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .map(|entry| {
            entry
                .parse::<IpNet>()
                .or_else(|_| entry.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| format!("`{entry}` is not a CIDR block like `10.0.0.0/8`"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use actix_web::http::header::HeaderValue;

    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_static(name),
                HeaderValue::from_static(value),
            );
        }
        map
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn forwarded_addresses_count_only_from_trusted_proxies() {
        let trusted = parse_trusted_proxies("10.0.0.0/8, 192.0.2.9").unwrap();
        let spoofed = headers(&[("x-forwarded-for", "203.0.113.5")]);
        assert_eq!(
            client_address(ip("198.51.100.1"), &spoofed, &trusted),
            ip("198.51.100.1"),
            "an untrusted peer's header is ignored"
        );
        assert_eq!(
            client_address(ip("10.1.2.3"), &spoofed, &[]),
            ip("10.1.2.3")
        );
        let chain = headers(&[
            ("x-forwarded-for", "1.1.1.1, 203.0.113.5"),
            ("x-forwarded-for", "10.9.9.9"),
        ]);
        assert_eq!(
            client_address(ip("192.0.2.9"), &chain, &trusted),
            ip("203.0.113.5"),
            "the nearest untrusted hop; what the client wrote further left is not believed"
        );
        assert_eq!(
            client_address(ip("10.0.0.1"), &HeaderMap::new(), &trusted),
            ip("10.0.0.1")
        );
    }

    #[test]
    fn forwarded_header_nodes_are_parsed() {
        let trusted = parse_trusted_proxies("10.0.0.0/8").unwrap();
        let forwarded = headers(&[(
            "forwarded",
            r#"for=1.1.1.1, for="[2001:db8:cafe::17]:4711";proto=https;by=10.0.0.1"#,
        )]);
        assert_eq!(
            client_address(ip("10.0.0.1"), &forwarded, &trusted),
            ip("2001:db8:cafe::17")
        );
        let hidden = headers(&[("forwarded", "for=1.1.1.1, for=_hidden, for=10.0.0.2")]);
        assert_eq!(
            client_address(ip("10.0.0.1"), &hidden, &trusted),
            ip("10.0.0.2"),
            "an obfuscated hop ends the walk at the last proxy"
        );
        assert_eq!(node_address("192.0.2.1:4711"), Some(ip("192.0.2.1")));
        assert_eq!(node_address("unknown"), None);
        assert_eq!(
            client_address(ip("::ffff:192.0.2.1"), &HeaderMap::new(), &[]),
            ip("192.0.2.1")
        );
    }

    #[test]
    fn trusted_proxies_are_cidr_blocks() {
        assert!(parse_trusted_proxies("").unwrap().is_empty());
        assert_eq!(parse_trusted_proxies("10.0.0.0/8, ::1").unwrap().len(), 2);
        assert!(parse_trusted_proxies("10.0.0.0/33").is_err());
        assert!(parse_trusted_proxies("proxy.internal").is_err());
    }
}
