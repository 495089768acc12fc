//! Password hashing with argon2id. Hashing is deliberately slow (tens of milliseconds of CPU),
//! so it runs on the blocking pool behind a semaphore: a burst of logins queues instead of
//! starving the request workers.

use std::sync::Arc;

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier, SaltString};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Semaphore;

/// Minimum length of a password we accept.
pub const MIN_PASSWORD_LEN: usize = 12;
/// Longer passwords are refused: hashing cost grows with length.
pub const MAX_PASSWORD_LEN: usize = 1024;

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("password hashing failed: {0}")]
    Hash(String),
    #[error("the hashing task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

#[derive(Clone)]
pub struct Passwords {
    permits: Arc<Semaphore>,
    /// Verified against when the email is unknown, so that both failures take the same time.
    dummy_hash: Arc<str>,
}

impl Passwords {
    /// `concurrency` hashes may run at once; more wait.
    ///
    /// # Errors
    /// When the dummy hash cannot be computed (never, short of a broken RNG).
    pub fn new(concurrency: usize) -> Result<Self, PasswordError> {
        Ok(Self {
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
            dummy_hash: hash_blocking("not a real password, only for timing")?.into(),
        })
    }

    /// # Errors
    /// [`PasswordError`] when hashing fails.
    pub async fn hash(&self, password: &SecretString) -> Result<String, PasswordError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|e| PasswordError::Hash(e.to_string()))?;
        let password = password.clone();
        tokio::task::spawn_blocking(move || hash_blocking(password.expose_secret())).await?
    }

    /// Checks `password` against `hash`, or against a dummy hash when there is no user, so the
    /// answer takes as long either way.
    ///
    /// # Errors
    /// [`PasswordError`] when the task fails; a wrong password is `Ok(false)`.
    pub async fn verify(
        &self,
        password: &SecretString,
        hash: Option<&str>,
    ) -> Result<bool, PasswordError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|e| PasswordError::Hash(e.to_string()))?;
        let password = password.clone();
        let real = hash.is_some();
        let hash = hash.map_or_else(|| self.dummy_hash.to_string(), str::to_owned);
        let matched = tokio::task::spawn_blocking(move || {
            PasswordHash::new(&hash).is_ok_and(|parsed| {
                Argon2::default()
                    .verify_password(password.expose_secret().as_bytes(), &parsed)
                    .is_ok()
            })
        })
        .await?;
        Ok(real && matched)
    }
}

fn hash_blocking(password: &str) -> Result<String, PasswordError> {
    let salt = SaltString::generate(&mut OsRng);
    // Argon2::default() is argon2id with the RFC 9106 / OWASP recommended parameters.
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| PasswordError::Hash(e.to_string()))
}

/// A random password for bootstrap: 24 characters from a 55-character alphabet without
/// look-alikes (about 138 bits).
///
/// # Errors
/// When the system has no randomness to give.
pub fn generate() -> Result<SecretString, getrandom::Error> {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    let mut bytes = [0u8; 24];
    getrandom::fill(&mut bytes)?;
    // 256 is not a multiple of the alphabet's length; the bias this leaves is negligible for a
    // 24-character password.
    let password: String = bytes
        .iter()
        .map(|b| char::from(ALPHABET[usize::from(*b) % ALPHABET.len()]))
        .collect();
    Ok(SecretString::from(password))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_are_argon2id_and_verify() {
        let passwords = Passwords::new(2).expect("init");
        let secret = SecretString::from("correct horse battery".to_owned());
        let hash = passwords.hash(&secret).await.expect("hash");
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert!(
            passwords
                .verify(&secret, Some(&hash))
                .await
                .expect("verify")
        );
        let wrong = SecretString::from("wrong horse battery".to_owned());
        assert!(!passwords.verify(&wrong, Some(&hash)).await.expect("verify"));
        assert!(!passwords.verify(&secret, None).await.expect("verify"));
        assert!(
            !passwords
                .verify(&secret, Some("garbage"))
                .await
                .expect("verify")
        );
    }

    #[test]
    fn generated_passwords_are_long_and_differ() {
        let a = generate().expect("random");
        let b = generate().expect("random");
        assert_eq!(a.expose_secret().len(), 24);
        assert!(a.expose_secret().len() >= MIN_PASSWORD_LEN);
        assert_ne!(a.expose_secret(), b.expose_secret());
    }
}
