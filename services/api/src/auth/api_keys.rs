//! Agent API keys: `aim_` followed by 64 hex digits (256 bits from the OS). Only the SHA-256 of
//! the whole key is stored; a lookup hashes the presented key and compares hashes, so the
//! database never sees a usable key.
//!
//! Checks are cached in memory for `AIM_API_KEY_CACHE_TTL_S`: an agent call costs no database
//! round trip to authenticate. Past that, the key is checked again; should the database be
//! unreachable then, a check less than [`STALE_LIMIT`] old still authenticates the key, so
//! agents' calls keep working (and keep being recorded) through a database outage. A revocation
//! evicts the key here at once; other replicas notice within the TTL, or, when the revocation
//! was made just before an outage, once the database answers again.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use moka::sync::Cache;
use sha2::{Digest, Sha256};
use uuid::Uuid;

pub const KEY_PREFIX: &str = "aim_";
/// How much of the key lists show: the prefix and 8 hex digits, 32 bits, enough to tell keys
/// apart and useless for guessing.
const DISPLAY_LEN: usize = KEY_PREFIX.len() + 8;
const KEY_HEX_LEN: usize = 64;
/// `last_used_at` is written at most this often per key.
const TOUCH_INTERVAL_S: i64 = 60;
/// Bounds memory whatever the number of keys presented.
const CACHE_CAPACITY: u64 = 100_000;

pub type KeyHash = [u8; 32];

/// A freshly generated key: `key` is shown once and then forgotten.
pub struct GeneratedKey {
    pub key: String,
    pub hash: KeyHash,
    pub display_prefix: String,
}

/// # Errors
/// When the system has no randomness to give.
pub fn generate() -> Result<GeneratedKey, getrandom::Error> {
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret)?;
    let key = format!("{KEY_PREFIX}{}", hex::encode(secret));
    Ok(GeneratedKey {
        hash: hash(&key),
        display_prefix: key[..DISPLAY_LEN].to_owned(),
        key,
    })
}

pub fn hash(key: &str) -> KeyHash {
    Sha256::digest(key.as_bytes()).into()
}

/// Whether a bearer credential looks like one of our keys (rather than a JWT).
pub fn looks_like_key(credential: &str) -> bool {
    credential.len() == KEY_PREFIX.len() + KEY_HEX_LEN
        && credential.starts_with(KEY_PREFIX)
        && credential[KEY_PREFIX.len()..]
            .bytes()
            .all(|b| b.is_ascii_hexdigit())
}

/// A key that checked out, as cached.
#[derive(Debug, Clone)]
pub struct ValidKey {
    pub key_id: Uuid,
    pub agent_id: Uuid,
    pub organization_id: Uuid,
    pub expires_at: Option<DateTime<Utc>>,
    /// When the database last said the key was usable.
    checked_at: std::time::Instant,
    /// Unix seconds of the last `last_used_at` write, shared by every clone of this entry.
    last_touch: Arc<AtomicI64>,
}

impl ValidKey {
    pub fn new(owner: &aim_store::model::KeyOwner) -> Self {
        Self {
            key_id: owner.key_id,
            agent_id: owner.agent_id,
            organization_id: owner.organization_id,
            expires_at: owner.expires_at,
            checked_at: std::time::Instant::now(),
            last_touch: Arc::new(AtomicI64::new(0)),
        }
    }

    pub fn expired(&self, now: DateTime<Utc>) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }

    /// True once a minute per key: the caller then writes `last_used_at`.
    pub fn due_for_touch(&self, now: DateTime<Utc>) -> bool {
        let now = now.timestamp();
        let last = self.last_touch.load(Ordering::Relaxed);
        now - last >= TOUCH_INTERVAL_S
            && self
                .last_touch
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }
}

/// Whether a stored key may authenticate now.
pub fn usable(owner: &aim_store::model::KeyOwner, now: DateTime<Utc>) -> bool {
    owner.revoked_at.is_none()
        && owner.expires_at.is_none_or(|at| at > now)
        && !owner.agent_deleted
        && owner.agent_status != aim_store::model::AgentStatus::Revoked
}

/// How long a key check keeps authenticating while the database cannot be asked again.
pub const STALE_LIMIT: Duration = Duration::from_secs(3_600);

/// What the cache knows of a key.
pub enum Lookup {
    /// Checked within the TTL: use it.
    Fresh(ValidKey),
    /// Checked longer ago: check again, and use it only if the database cannot answer.
    Stale(ValidKey),
    Unknown,
}

#[derive(Clone)]
pub struct KeyCache {
    entries: Cache<KeyHash, ValidKey>,
    fresh_for: Duration,
}

impl KeyCache {
    pub fn new(ttl: Duration) -> Self {
        Self {
            entries: Cache::builder()
                .max_capacity(CACHE_CAPACITY)
                .time_to_live(STALE_LIMIT.max(ttl))
                .support_invalidation_closures()
                .build(),
            fresh_for: ttl,
        }
    }

    pub fn lookup(&self, hash: &KeyHash) -> Lookup {
        match self.entries.get(hash) {
            Some(key) if key.checked_at.elapsed() < self.fresh_for => Lookup::Fresh(key),
            Some(key) => Lookup::Stale(key),
            None => Lookup::Unknown,
        }
    }

    pub fn insert(&self, hash: KeyHash, key: ValidKey) {
        self.entries.insert(hash, key);
    }

    pub fn evict(&self, hash: &[u8]) {
        if let Ok(hash) = KeyHash::try_from(hash) {
            self.entries.invalidate(&hash);
        }
    }

    /// Evicts every key of an agent, after a change that may make them unusable.
    pub fn evict_agent(&self, agent_id: Uuid) {
        // Only fails when invalidation closures were not enabled, which `new` does.
        let _ = self
            .entries
            .invalidate_entries_if(move |_, key| key.agent_id == agent_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_have_the_documented_shape() {
        let key = generate().expect("random");
        assert!(looks_like_key(&key.key), "{}", key.key);
        assert!(key.key.starts_with(&key.display_prefix));
        assert_eq!(key.display_prefix.len(), 12);
        assert_eq!(hash(&key.key), key.hash);
        assert_ne!(generate().expect("random").key, key.key);
    }

    #[test]
    fn jwts_and_junk_are_not_keys() {
        assert!(!looks_like_key("eyJhbGciOiJIUzI1NiJ9.e30.sig"));
        assert!(!looks_like_key("aim_short"));
        assert!(!looks_like_key(&format!("aim_{}", "z".repeat(64))));
    }

    #[test]
    fn last_used_is_due_once_a_minute() {
        let owner = aim_store::model::KeyOwner {
            key_id: Uuid::nil(),
            agent_id: Uuid::nil(),
            organization_id: Uuid::nil(),
            expires_at: None,
            revoked_at: None,
            agent_status: aim_store::model::AgentStatus::Verified,
            agent_deleted: false,
        };
        let key = ValidKey::new(&owner);
        let now = Utc::now();
        assert!(key.due_for_touch(now));
        assert!(
            !key.clone()
                .due_for_touch(now + chrono::Duration::seconds(30))
        );
        assert!(key.due_for_touch(now + chrono::Duration::seconds(61)));
    }
}
