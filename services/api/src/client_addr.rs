//! The client's address, by one rule for rate limits, the audit trail and `api_calls.ip_address`
//! (used by the `Principal` extractor and the analytics layer alike).

use std::net::{IpAddr, SocketAddr};

use axum::extract::ConnectInfo;
use axum::http::HeaderMap;

/// The client's address: the last `X-Forwarded-For` entry behind a trusted proxy, else the
/// TCP peer. The one rule for rate limits, the audit trail and `api_calls.ip_address`.
pub(crate) fn client_ip(
    headers: &HeaderMap,
    extensions: &axum::http::Extensions,
    trust_proxy: bool,
) -> Option<IpAddr> {
    trust_proxy
        .then(|| forwarded_for(headers))
        .flatten()
        .or_else(|| {
            extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|ConnectInfo(addr)| addr.ip())
        })
}

/// The address our proxy saw: the last entry of `X-Forwarded-For`, the one it appended.
/// Earlier entries come from the client and prove nothing; when the last one is not an
/// address, the peer is used instead.
fn forwarded_for(headers: &HeaderMap) -> Option<IpAddr> {
    headers
        .get_all("x-forwarded-for")
        .iter()
        .next_back()?
        .to_str()
        .ok()?
        .rsplit(',')
        .next()?
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    #[test]
    fn the_proxy_appended_address_is_used() {
        let mut headers = HeaderMap::new();
        headers.append(
            "x-forwarded-for",
            HeaderValue::from_static("1.1.1.1, 2.2.2.2"),
        );
        headers.append("x-forwarded-for", HeaderValue::from_static("3.3.3.3"));
        assert_eq!(forwarded_for(&headers), "3.3.3.3".parse().ok());
        headers.append("x-forwarded-for", HeaderValue::from_static("1.1.1.1, junk"));
        assert_eq!(
            forwarded_for(&headers),
            None,
            "a client-forged prefix is never used"
        );
    }
}
