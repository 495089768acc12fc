//! Rate limits: login attempts per client address and per email, and requests per agent key.
//! `governor` keeps one GCRA cell per key; [`RateLimits::retain_recent`] forgets idle keys so
//! memory stays bounded, and `aim serve` calls it every minute.

use std::net::IpAddr;
use std::num::NonZeroU32;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use uuid::Uuid;

use crate::error::ApiError;

pub struct RateLimits {
    login_by_ip: DefaultKeyedRateLimiter<IpAddr>,
    login_by_email: DefaultKeyedRateLimiter<String>,
    agent_keys: Option<DefaultKeyedRateLimiter<Uuid>>,
}

impl RateLimits {
    pub fn new(
        per_ip_per_min: NonZeroU32,
        per_email_per_min: NonZeroU32,
        per_key_per_s: u32,
    ) -> Self {
        Self {
            login_by_ip: RateLimiter::keyed(Quota::per_minute(per_ip_per_min)),
            login_by_email: RateLimiter::keyed(Quota::per_minute(per_email_per_min)),
            agent_keys: NonZeroU32::new(per_key_per_s)
                .map(|n| RateLimiter::keyed(Quota::per_second(n))),
        }
    }

    /// # Errors
    /// [`ApiError::TooManyRequests`] when either the address or the email is over its limit.
    pub fn check_login(&self, ip: Option<IpAddr>, email: &str) -> Result<(), ApiError> {
        if let Some(ip) = ip {
            check(&self.login_by_ip, &ip)?;
        }
        check(&self.login_by_email, &email.to_lowercase())
    }

    /// # Errors
    /// [`ApiError::TooManyRequests`] when the key is over `AIM_AGENT_RATE_LIMIT_PER_S`.
    pub fn check_agent_key(&self, key_id: Uuid) -> Result<(), ApiError> {
        match &self.agent_keys {
            Some(limiter) => check(limiter, &key_id),
            None => Ok(()),
        }
    }

    pub fn retain_recent(&self) {
        self.login_by_ip.retain_recent();
        self.login_by_email.retain_recent();
        if let Some(limiter) = &self.agent_keys {
            limiter.retain_recent();
        }
    }
}

fn check<K>(limiter: &DefaultKeyedRateLimiter<K>, key: &K) -> Result<(), ApiError>
where
    K: std::hash::Hash + Eq + Clone,
{
    limiter.check_key(key).map_err(|not_until| {
        let wait = not_until.wait_time_from(DefaultClock::default().now());
        ApiError::TooManyRequests {
            retry_after_s: wait.as_secs() + 1,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_limits_apply_per_email_regardless_of_case() {
        let one = NonZeroU32::MIN;
        let limits = RateLimits::new(NonZeroU32::new(100).expect("non-zero"), one, 0);
        limits
            .check_login(None, "a@example.com")
            .expect("first attempt");
        match limits.check_login(None, "A@Example.com") {
            Err(ApiError::TooManyRequests { retry_after_s }) => assert!(retry_after_s >= 1),
            other => panic!("expected 429, got {other:?}"),
        }
        limits
            .check_login(None, "b@example.com")
            .expect("another email is separate");
    }

    #[test]
    fn agent_limit_zero_means_off() {
        let limits = RateLimits::new(NonZeroU32::MIN, NonZeroU32::MIN, 0);
        for _ in 0..1000 {
            limits.check_agent_key(Uuid::nil()).expect("unlimited");
        }
    }
}
