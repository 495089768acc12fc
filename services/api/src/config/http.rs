//! The listeners and what every HTTP request meets before its handler.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::http::HeaderValue;

use super::vars::{ConfigError, Vars};

#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// `AIM_LISTEN`: the public API.
    pub listen: SocketAddr,
    /// `AIM_METRICS_LISTEN`: Prometheus `/metrics`, kept off the public listener.
    pub metrics_listen: SocketAddr,
    /// `AIM_CORS_ORIGINS`: origins allowed to call the API from a browser; none by default.
    pub cors_origins: Vec<HeaderValue>,
    /// `AIM_TRUST_PROXY`: take the client address from `X-Forwarded-For`; off by default.
    pub trust_proxy: bool,
    /// `AIM_AGENT_RATE_LIMIT_PER_S`: requests per second per agent key; 0 turns it off.
    pub agent_rate_limit_per_s: u32,
}

impl HttpConfig {
    pub const DEFAULT_LISTEN: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 8080);
    pub const DEFAULT_METRICS_LISTEN: SocketAddr =
        SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 9464);
    pub const DEFAULT_AGENT_RATE_LIMIT_PER_S: u32 = 100;

    pub(super) fn read(vars: &Vars<'_>) -> Result<Self, ConfigError> {
        Ok(Self {
            listen: vars.or("AIM_LISTEN", Self::DEFAULT_LISTEN)?,
            metrics_listen: vars.or("AIM_METRICS_LISTEN", Self::DEFAULT_METRICS_LISTEN)?,
            cors_origins: vars
                .get("AIM_CORS_ORIGINS")
                .map(cors_origins)
                .transpose()?
                .unwrap_or_default(),
            trust_proxy: vars.flag("AIM_TRUST_PROXY", false)?,
            agent_rate_limit_per_s: vars.or(
                "AIM_AGENT_RATE_LIMIT_PER_S",
                Self::DEFAULT_AGENT_RATE_LIMIT_PER_S,
            )?,
        })
    }
}

fn cors_origins(list: &str) -> Result<Vec<HeaderValue>, ConfigError> {
    list.split(',')
        .map(str::trim)
        .filter(|o| !o.is_empty())
        .map(|origin| {
            let valid = (origin.starts_with("http://") || origin.starts_with("https://"))
                && !origin.ends_with('/');
            HeaderValue::from_str(origin)
                .ok()
                .filter(|_| valid)
                .ok_or_else(|| ConfigError::Invalid {
                    name: "AIM_CORS_ORIGINS",
                    value: origin.to_owned(),
                    reason: "expected comma-separated origins such as https://app.example.com"
                        .into(),
                })
        })
        .collect()
}
