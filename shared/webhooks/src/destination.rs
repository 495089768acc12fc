//! Where a webhook may be sent. Only `http` and `https` URLs with a host and no credentials;
//! unless the operator allows private destinations, no address of the loopback, unspecified,
//! link-local, private, shared (100.64/10), unique-local, multicast, broadcast, reserved or
//! documentation ranges, and no IPv4-mapped, IPv4-compatible or NAT64 IPv6 address (each can
//! reach an IPv4 network the other rules refuse).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use url::{Host, Url};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DestinationError {
    #[error("not a URL: {0}")]
    Invalid(String),
    #[error("only http and https URLs are allowed")]
    Scheme,
    #[error("the URL must name a host")]
    NoHost,
    #[error("the URL must not carry a user name or password")]
    Credentials,
    #[error("{0} is a loopback, private, link-local or otherwise internal address")]
    Forbidden(IpAddr),
    #[error("the host {host} did not resolve: {reason}")]
    Unresolved { host: String, reason: String },
}

/// A checked endpoint URL.
#[derive(Debug, Clone)]
pub struct Destination {
    pub url: Url,
    /// The name TLS verifies and `Host` carries.
    pub host: String,
    pub port: u16,
    pub https: bool,
}

impl Destination {
    /// Checks what can be checked without a lookup: the scheme, the host, no credentials, and
    /// an IP-literal host's address.
    ///
    /// # Errors
    /// What is wrong with the URL.
    pub fn parse(raw: &str, allow_private: bool) -> Result<Self, DestinationError> {
        let url = Url::parse(raw).map_err(|e| DestinationError::Invalid(e.to_string()))?;
        let https = match url.scheme() {
            "https" => true,
            "http" => false,
            _ => return Err(DestinationError::Scheme),
        };
        if !url.username().is_empty() || url.password().is_some() {
            return Err(DestinationError::Credentials);
        }
        let host = match url.host() {
            None => return Err(DestinationError::NoHost),
            Some(Host::Domain("")) => return Err(DestinationError::NoHost),
            Some(Host::Domain(d)) => d.to_owned(),
            Some(Host::Ipv4(ip)) => {
                check(IpAddr::V4(ip), allow_private)?;
                ip.to_string()
            }
            Some(Host::Ipv6(ip)) => {
                check(IpAddr::V6(ip), allow_private)?;
                ip.to_string()
            }
        };
        let port = url
            .port_or_known_default()
            .unwrap_or(if https { 443 } else { 80 });
        Ok(Self {
            url,
            host,
            port,
            https,
        })
    }

    /// Resolves the host once and checks every address it has; the caller connects to these,
    /// never resolving again.
    ///
    /// # Errors
    /// [`DestinationError::Unresolved`], or [`DestinationError::Forbidden`] naming the first
    /// refused address.
    pub async fn resolve(&self, allow_private: bool) -> Result<Vec<SocketAddr>, DestinationError> {
        let unresolved = |reason: String| DestinationError::Unresolved {
            host: self.host.clone(),
            reason,
        };
        let addresses: Vec<SocketAddr> = tokio::net::lookup_host((self.host.as_str(), self.port))
            .await
            .map_err(|e| unresolved(e.to_string()))?
            .collect();
        if addresses.is_empty() {
            return Err(unresolved("no addresses".into()));
        }
        for address in &addresses {
            check(address.ip(), allow_private)?;
        }
        Ok(addresses)
    }
}

fn check(ip: IpAddr, allow_private: bool) -> Result<(), DestinationError> {
    if !allow_private && forbidden(ip) {
        return Err(DestinationError::Forbidden(ip));
    }
    Ok(())
}

/// Whether a tenant's webhook may not reach `ip` (see the module's documentation).
#[must_use]
pub fn forbidden(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => forbidden_v4(v4),
        IpAddr::V6(v6) => forbidden_v6(v6),
    }
}

fn forbidden_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_multicast()
        || ip.is_broadcast()
        || ip.is_documentation()
        || a == 0
        // Shared address space (carrier-grade NAT).
        || (a == 100 && (64..128).contains(&b))
        // IETF protocol assignments.
        || (a == 192 && b == 0 && c == 0)
        // Benchmarking.
        || (a == 198 && (b == 18 || b == 19))
        // Reserved for future use.
        || a >= 240
}

fn forbidden_v6(ip: Ipv6Addr) -> bool {
    let segments = ip.segments();
    ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        // Unique local fc00::/7.
        || (segments[0] & 0xfe00) == 0xfc00
        // Link-local fe80::/10.
        || (segments[0] & 0xffc0) == 0xfe80
        // Site-local fec0::/10 (deprecated, still routed by some).
        || (segments[0] & 0xffc0) == 0xfec0
        // IPv4-mapped ::ffff:0:0/96 and IPv4-compatible ::/96.
        || segments[..5].iter().all(|s| *s == 0) && (segments[5] == 0xffff || segments[5] == 0)
        // NAT64 64:ff9b::/96.
        || (segments[0] == 0x64 && segments[1] == 0xff9b)
        // Documentation 2001:db8::/32.
        || (segments[0] == 0x2001 && segments[1] == 0x0db8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_addresses_are_refused_and_public_ones_pass() {
        for refused in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "100.127.255.255",
            "0.0.0.0",
            "255.255.255.255",
            "::1",
            "::",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:8.8.8.8",
            "::127.0.0.1",
            "64:ff9b::10.0.0.1",
            "ff02::1",
        ] {
            let ip: IpAddr = refused.parse().expect("an address");
            assert!(forbidden(ip), "{refused} should be refused");
        }
        for allowed in ["8.8.8.8", "1.1.1.1", "100.128.0.1", "2606:4700::1111"] {
            let ip: IpAddr = allowed.parse().expect("an address");
            assert!(!forbidden(ip), "{allowed} should pass");
        }
    }

    #[test]
    fn urls_are_checked_before_any_lookup() {
        assert_eq!(
            Destination::parse("ftp://example.com/", false).err(),
            Some(DestinationError::Scheme)
        );
        assert_eq!(
            Destination::parse("https://user:pw@example.com/", false).err(),
            Some(DestinationError::Credentials)
        );
        assert!(matches!(
            Destination::parse("http://127.0.0.1:9000/hook", false),
            Err(DestinationError::Forbidden(_))
        ));
        assert!(matches!(
            Destination::parse("http://[::ffff:10.0.0.1]/", false),
            Err(DestinationError::Forbidden(_))
        ));
        let allowed = Destination::parse("http://127.0.0.1:9000/hook", true).expect("allowed");
        assert_eq!((allowed.host.as_str(), allowed.port), ("127.0.0.1", 9000));
        let public = Destination::parse("https://hooks.example.com/x", false).expect("valid");
        assert!(public.https);
        assert_eq!(public.port, 443);
    }

    #[tokio::test]
    async fn a_name_that_resolves_to_loopback_is_refused_at_delivery() {
        let destination = Destination::parse("http://localhost:9/", false).expect("parses");
        assert!(matches!(
            destination.resolve(false).await,
            Err(DestinationError::Forbidden(_))
        ));
        assert!(destination.resolve(true).await.is_ok());
    }
}
