//! Agent API keys: `aim_` followed by 64 hex digits (256 bits from the OS). Only the SHA-256 of
//! the whole key is stored; a lookup hashes the presented key and compares hashes, so the
//! database never sees a usable key.
//!
//! Checks are cached in memory for `AIM_API_KEY_CACHE_TTL_S`: an agent call costs no database
//! round trip to authenticate. In the last quarter of the TTL one call starts a new check off
//! the request path, so a key in steady use never makes a caller wait for the database. A key
//! not used then is checked again on its next call. Should the database be unreachable, a check
//! less than [`STALE_LIMIT`] old still authenticates the key, so agents' calls keep working (and
//! keep being recorded) through a database outage; once a check has found the database down,
//! the key's calls stop waiting for it and one check a second, in the background, looks for its
//! return. A revocation evicts the key here at once; other replicas notice within the TTL, or,
//! when the revocation was made just before an outage, within a second of the database's return.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

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
    /// The agent was suspended when the key was checked: its calls are refused with a 403
    /// (and recorded) until an admin reinstates it.
    pub suspended: bool,
    /// When the database last said the key was usable.
    checked_at: Instant,
    /// Unix seconds of the last `last_used_at` write, shared by every clone of this entry and
    /// kept by the entries of later checks.
    last_touch: Arc<AtomicI64>,
    /// The next check's state, shared by every clone of this entry.
    recheck: Arc<Recheck>,
}

/// Keeps a key's checks to one at a time, and remembers that one found the database down.
#[derive(Debug, Default)]
struct Recheck {
    /// A check runs in the background now.
    running: AtomicBool,
    /// Milliseconds after `checked_at` (plus one, so 0 means never) at which a check last found
    /// the database unavailable.
    unavailable_at: AtomicU64,
}

impl ValidKey {
    pub fn new(owner: &aim_store::model::KeyOwner) -> Self {
        Self {
            key_id: owner.key_id,
            agent_id: owner.agent_id,
            organization_id: owner.organization_id,
            expires_at: owner.expires_at,
            suspended: owner.agent_status == aim_store::model::AgentStatus::Suspended,
            checked_at: Instant::now(),
            last_touch: Arc::new(AtomicI64::new(0)),
            recheck: Arc::default(),
        }
    }

    /// The entry of a later check that found the key still usable.
    pub fn checked_again(&self, owner: &aim_store::model::KeyOwner) -> Self {
        Self {
            last_touch: Arc::clone(&self.last_touch),
            ..Self::new(owner)
        }
    }

    /// Records that a check could not reach the database: the key's calls stop waiting for it,
    /// and the next background check is due a second from now.
    pub fn database_unavailable(&self) {
        let since = u64::try_from(self.checked_at.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.recheck
            .unavailable_at
            .store(since.saturating_add(1), Ordering::Release);
        self.recheck.running.store(false, Ordering::Release);
    }

    fn database_seen_unavailable(&self) -> bool {
        self.recheck.unavailable_at.load(Ordering::Acquire) != 0
    }

    /// True for exactly one caller when a background check is due: none is running, and the
    /// last one to find the database down was at least [`RECHECK_RETRY`] ago.
    fn claim_recheck(&self, retry: Duration) -> bool {
        let failed_at = self.recheck.unavailable_at.load(Ordering::Acquire);
        if failed_at != 0 {
            let now = u64::try_from(self.checked_at.elapsed().as_millis()).unwrap_or(u64::MAX);
            let retry = u64::try_from(retry.as_millis()).unwrap_or(u64::MAX);
            if now.saturating_sub(failed_at - 1) < retry {
                return false;
            }
        }
        self.recheck
            .running
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
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

/// How often a key's check is tried again while the database is found down.
pub const RECHECK_RETRY: Duration = Duration::from_secs(1);

/// What the cache knows of a key.
pub enum Lookup {
    /// Usable without asking the database.
    Fresh(ValidKey),
    /// Usable without asking the database, and this caller should start the key's next check in
    /// the background (it is the only one told so).
    Recheck(ValidKey),
    /// Checked longer ago than the TTL: check again now, and use it only if the database cannot
    /// answer.
    Stale(ValidKey),
    Unknown,
}

#[derive(Clone)]
pub struct KeyCache {
    entries: Cache<KeyHash, ValidKey>,
    fresh_for: Duration,
    retry: Duration,
    /// Counts evictions, so that a check which read the database before a revocation cannot
    /// put the key back after the revocation evicted it.
    evictions: Arc<AtomicU64>,
}

/// The eviction count a check started under; see [`KeyCache::insert`].
#[derive(Debug, Clone, Copy)]
pub struct Generation(u64);

impl KeyCache {
    pub fn new(ttl: Duration) -> Self {
        Self::with_retry(ttl, RECHECK_RETRY)
    }

    fn with_retry(ttl: Duration, retry: Duration) -> Self {
        Self {
            entries: Cache::builder()
                .max_capacity(CACHE_CAPACITY)
                .time_to_live(STALE_LIMIT.max(ttl))
                .support_invalidation_closures()
                .build(),
            fresh_for: ttl,
            retry,
            evictions: Arc::new(AtomicU64::new(0)),
        }
    }

    pub fn lookup(&self, hash: &KeyHash) -> Lookup {
        let Some(key) = self.entries.get(hash) else {
            return Lookup::Unknown;
        };
        let age = key.checked_at.elapsed();
        if age < self.fresh_for * 3 / 4 {
            Lookup::Fresh(key)
        } else if age < self.fresh_for || key.database_seen_unavailable() {
            if key.claim_recheck(self.retry) {
                Lookup::Recheck(key)
            } else {
                Lookup::Fresh(key)
            }
        } else {
            Lookup::Stale(key)
        }
    }

    /// Taken before a check reads the database, and handed back to [`KeyCache::insert`].
    pub fn generation(&self) -> Generation {
        Generation(self.evictions.load(Ordering::SeqCst))
    }

    /// Caches a check unless an eviction happened since `generation` was taken: the check may
    /// have read the key before a revocation. Returns whether the check is cached.
    pub fn insert(&self, hash: KeyHash, key: ValidKey, generation: Generation) -> bool {
        if self.evictions.load(Ordering::SeqCst) != generation.0 {
            return false;
        }
        self.entries.insert(hash, key);
        // An eviction between the test above and the insert would have missed the new entry.
        if self.evictions.load(Ordering::SeqCst) != generation.0 {
            self.entries.invalidate(&hash);
            return false;
        }
        true
    }

    /// Drops a key that a check found unusable. Unlike [`KeyCache::evict`] this leaves the
    /// eviction count alone: a stream of unknown keys must not keep valid ones from being cached.
    pub fn forget(&self, hash: &KeyHash) {
        self.entries.invalidate(hash);
    }

    /// Drops a key after a change that makes it unusable (a revocation, say), and keeps any
    /// check that read the database before the change from caching it again.
    pub fn evict(&self, hash: &[u8]) {
        if let Ok(hash) = KeyHash::try_from(hash) {
            self.evictions.fetch_add(1, Ordering::SeqCst);
            self.entries.invalidate(&hash);
        }
    }

    /// Evicts every key of an agent, after a change that may make them unusable.
    pub fn evict_agent(&self, agent_id: Uuid) {
        self.evictions.fetch_add(1, Ordering::SeqCst);
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

    fn owner() -> aim_store::model::KeyOwner {
        aim_store::model::KeyOwner {
            key_id: Uuid::nil(),
            agent_id: Uuid::nil(),
            organization_id: Uuid::nil(),
            expires_at: None,
            revoked_at: None,
            agent_status: aim_store::model::AgentStatus::Verified,
            agent_deleted: false,
        }
    }

    fn kind(lookup: &Lookup) -> &'static str {
        match lookup {
            Lookup::Fresh(_) => "fresh",
            Lookup::Recheck(_) => "recheck",
            Lookup::Stale(_) => "stale",
            Lookup::Unknown => "unknown",
        }
    }

    #[test]
    fn a_key_is_checked_again_ahead_of_its_ttl_by_one_caller() {
        // Wide margins: the assertions must hold on a busy machine.
        let cache = KeyCache::new(Duration::from_secs(2));
        let hash = [7; 32];
        assert!(cache.insert(hash, ValidKey::new(&owner()), cache.generation()));
        assert_eq!(kind(&cache.lookup(&hash)), "fresh");
        std::thread::sleep(Duration::from_millis(1_550));
        // In the last quarter of the TTL: one caller starts the check, the others do not wait.
        assert_eq!(kind(&cache.lookup(&hash)), "recheck");
        assert_eq!(kind(&cache.lookup(&hash)), "fresh");
        std::thread::sleep(Duration::from_millis(500));
        // Past the TTL with no answer: checked on the request path.
        assert_eq!(kind(&cache.lookup(&hash)), "stale");
    }

    #[test]
    fn once_the_database_is_found_down_calls_stop_waiting_and_one_check_a_retry_looks_again() {
        let cache = KeyCache::with_retry(Duration::from_millis(50), Duration::from_millis(300));
        let hash = [8; 32];
        assert!(cache.insert(hash, ValidKey::new(&owner()), cache.generation()));
        std::thread::sleep(Duration::from_millis(60));
        let Lookup::Stale(key) = cache.lookup(&hash) else {
            panic!("past the TTL the key is stale");
        };
        key.database_unavailable();
        for _ in 0..3 {
            assert_eq!(kind(&cache.lookup(&hash)), "fresh", "within the retry");
        }
        std::thread::sleep(Duration::from_millis(320));
        let Lookup::Recheck(key) = cache.lookup(&hash) else {
            panic!("a check is due after the retry");
        };
        assert_eq!(kind(&cache.lookup(&hash)), "fresh", "one check at a time");
        // That check finds the database down again: the next waits another retry.
        key.database_unavailable();
        assert_eq!(kind(&cache.lookup(&hash)), "fresh");
        // A check that finds the key usable replaces the entry: fresh, nothing remembered.
        assert!(cache.insert(hash, key.checked_again(&owner()), cache.generation()));
        assert_eq!(kind(&cache.lookup(&hash)), "fresh");
    }

    #[test]
    fn a_check_overtaken_by_an_eviction_is_not_cached() {
        let cache = KeyCache::new(Duration::from_secs(30));
        let hash = [9; 32];
        let before = cache.generation();
        cache.evict(&hash);
        assert!(!cache.insert(hash, ValidKey::new(&owner()), before));
        assert_eq!(kind(&cache.lookup(&hash)), "unknown");
        let before = cache.generation();
        cache.evict_agent(Uuid::nil());
        assert!(!cache.insert(hash, ValidKey::new(&owner()), before));
        // Unknown keys presented and forgotten do not hold other checks back.
        let before = cache.generation();
        cache.forget(&[10; 32]);
        assert!(cache.insert(hash, ValidKey::new(&owner()), before));
        assert_eq!(kind(&cache.lookup(&hash)), "fresh");
    }

    #[test]
    fn last_used_is_due_once_a_minute() {
        let key = ValidKey::new(&owner());
        let now = Utc::now();
        assert!(key.due_for_touch(now));
        assert!(
            !key.clone()
                .due_for_touch(now + chrono::Duration::seconds(30))
        );
        assert!(key.due_for_touch(now + chrono::Duration::seconds(61)));
    }
}
