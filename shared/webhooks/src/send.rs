//! One delivery attempt: check the URL, resolve once, connect to a checked address (TLS with
//! issue 9's ring provider and the system's roots for `https`), POST the signed body over
//! HTTP/1.1, and take the status. A hand-rolled hyper connection rather than a client library:
//! the checks need the connection made to the address that was checked, with no redirects and
//! no proxy, which the common clients only offer through resolver hooks that still re-resolve.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;

use crate::destination::{Destination, DestinationError};

#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error(transparent)]
    Destination(#[from] DestinationError),
    #[error("could not connect: {0}")]
    Connect(String),
    #[error("TLS: {0}")]
    Tls(String),
    #[error("HTTP: {0}")]
    Http(String),
    /// Any status outside 2xx, redirects included: they are not followed.
    #[error("the endpoint answered {0}")]
    Status(u16),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
}

impl SendError {
    #[must_use]
    pub fn status_code(&self) -> Option<u16> {
        match self {
            Self::Status(code) => Some(*code),
            _ => None,
        }
    }
}

/// What one attempt sends.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    pub url: &'a str,
    pub delivery_id: &'a str,
    pub event: &'a str,
    /// The `AIM-Signature` value.
    pub signature: &'a str,
    pub body: Bytes,
}

/// Sends deliveries; one per process, shared by every attempt.
#[derive(Debug)]
pub struct Sender {
    allow_private: bool,
    timeout: Duration,
    tls: OnceLock<Result<Arc<rustls::ClientConfig>, String>>,
}

impl Sender {
    #[must_use]
    pub fn new(allow_private: bool, timeout: Duration) -> Self {
        Self {
            allow_private,
            timeout,
            tls: OnceLock::new(),
        }
    }

    #[must_use]
    pub fn allow_private(&self) -> bool {
        self.allow_private
    }

    /// Posts the request; `Ok` with the status when it is 2xx.
    ///
    /// # Errors
    /// Why the attempt failed; a retry may succeed for every kind but a refused destination.
    pub async fn send(&self, request: Request<'_>) -> Result<u16, SendError> {
        tokio::time::timeout(self.timeout, self.attempt(request))
            .await
            .map_err(|_| SendError::Timeout(self.timeout))?
    }

    async fn attempt(&self, request: Request<'_>) -> Result<u16, SendError> {
        let destination = Destination::parse(request.url, self.allow_private)?;
        let addresses = destination.resolve(self.allow_private).await?;
        let tcp = connect(&addresses).await?;
        let path = match destination.url.query() {
            Some(query) => format!("{}?{query}", destination.url.path()),
            None => destination.url.path().to_owned(),
        };
        let host_header = match destination.url.port() {
            Some(port) => format!("{}:{port}", destination.url.host_str().unwrap_or_default()),
            None => destination.url.host_str().unwrap_or_default().to_owned(),
        };
        let http_request = http::Request::post(path)
            .header(http::header::HOST, host_header)
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(
                http::header::USER_AGENT,
                concat!("aim-webhooks/", env!("CARGO_PKG_VERSION")),
            )
            .header(crate::DELIVERY_ID_HEADER, request.delivery_id)
            .header(crate::EVENT_HEADER, request.event)
            .header(crate::SIGNATURE_HEADER, request.signature)
            .body(Full::new(request.body))
            .map_err(|e| SendError::Http(e.to_string()))?;
        if destination.https {
            let config = self.tls_config()?;
            let name = ServerName::try_from(destination.host.clone())
                .map_err(|e| SendError::Tls(e.to_string()))?;
            let stream = tokio_rustls::TlsConnector::from(config)
                .connect(name, tcp)
                .await
                .map_err(|e| SendError::Tls(e.to_string()))?;
            exchange(TokioIo::new(stream), http_request).await
        } else {
            exchange(TokioIo::new(tcp), http_request).await
        }
    }

    fn tls_config(&self) -> Result<Arc<rustls::ClientConfig>, SendError> {
        self.tls
            .get_or_init(|| {
                aim_connect::web_client_config()
                    .map(Arc::new)
                    .map_err(|e| e.to_string())
            })
            .clone()
            .map_err(SendError::Tls)
    }
}

async fn connect(addresses: &[SocketAddr]) -> Result<TcpStream, SendError> {
    let mut last = String::from("no address");
    for address in addresses {
        match TcpStream::connect(address).await {
            Ok(stream) => return Ok(stream),
            Err(e) => last = format!("{address}: {e}"),
        }
    }
    Err(SendError::Connect(last))
}

async fn exchange<T>(io: T, request: http::Request<Full<Bytes>>) -> Result<u16, SendError>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| SendError::Http(e.to_string()))?;
    let driver = tokio::spawn(connection);
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| SendError::Http(e.to_string()));
    let outcome = match response {
        Ok(response) => {
            let status = response.status().as_u16();
            // Read (and drop) a short body so the receiver sees a clean exchange; a long one is
            // cut when the connection closes.
            let _ =
                tokio::time::timeout(Duration::from_secs(1), response.into_body().collect()).await;
            if (200..300).contains(&status) {
                Ok(status)
            } else {
                Err(SendError::Status(status))
            }
        }
        Err(e) => Err(e),
    };
    driver.abort();
    outcome
}

/// The wait before attempt `attempt + 1` after `attempt` failed: `base · 2^(attempt − 1)`,
/// capped at `cap`, then a random point of its upper half (`random` in [0, 1)), so endpoints
/// that failed together are not retried together.
#[must_use]
pub fn backoff(attempt: u32, base: Duration, cap: Duration, random: f64) -> Duration {
    let exponent = attempt.saturating_sub(1).min(30);
    let full = base.saturating_mul(1u32 << exponent).min(cap);
    full.mul_f64(0.5 + 0.5 * random.clamp(0.0, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn the_backoff_grows_stays_under_the_cap_and_keeps_half(attempt in 1u32..100, random in 0.0f64..1.0) {
            let base = Duration::from_secs(10);
            let cap = Duration::from_secs(3600);
            let wait = backoff(attempt, base, cap, random);
            prop_assert!(wait <= cap);
            let full = base.saturating_mul(1u32 << attempt.saturating_sub(1).min(30)).min(cap);
            prop_assert!(wait >= full / 2);
        }
    }

    #[tokio::test]
    async fn a_private_destination_is_refused_without_a_connection() {
        let sender = Sender::new(false, Duration::from_secs(5));
        let outcome = sender
            .send(Request {
                url: "http://127.0.0.1:1/hook",
                delivery_id: "d",
                event: "webhook.ping",
                signature: "t=0",
                body: Bytes::from_static(b"{}"),
            })
            .await;
        assert!(matches!(
            outcome,
            Err(SendError::Destination(DestinationError::Forbidden(_)))
        ));
    }
}
