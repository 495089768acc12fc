//! Webhook secrets: generated, encrypted at rest with AES-256-GCM under the operator's key, and
//! used to sign bodies with HMAC-SHA256. ring does both (it is already the process's TLS
//! crypto provider), so no second crypto library is linked.

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::hmac;

/// Every secret starts with this, so one found in a log or a repository is recognisable.
pub const SECRET_PREFIX: &str = "whsec_";

#[derive(Debug, thiserror::Error)]
pub enum CipherError {
    #[error("the webhook encryption key must be 32 bytes written as 64 hex digits")]
    BadKey,
    #[error("no randomness for a nonce or a secret: {0}")]
    Random(String),
    /// The stored secret does not decrypt under this key: another key, or altered bytes.
    #[error("a stored webhook secret does not decrypt under the configured key")]
    Decrypt,
}

/// AES-256-GCM under the operator's key. A stored secret is the 12-byte random nonce followed
/// by the ciphertext and its tag.
pub struct Cipher {
    key: LessSafeKey,
}

impl std::fmt::Debug for Cipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Cipher(<redacted>)")
    }
}

impl Cipher {
    /// # Errors
    /// [`CipherError::BadKey`] unless `hex_key` is 64 hex digits.
    pub fn from_hex(hex_key: &str) -> Result<Self, CipherError> {
        let bytes = hex::decode(hex_key.trim()).map_err(|_| CipherError::BadKey)?;
        let key = UnboundKey::new(&AES_256_GCM, &bytes).map_err(|_| CipherError::BadKey)?;
        Ok(Self {
            key: LessSafeKey::new(key),
        })
    }

    /// # Errors
    /// No randomness for the nonce.
    pub fn encrypt(&self, plain: &str) -> Result<Vec<u8>, CipherError> {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|e| CipherError::Random(e.to_string()))?;
        let mut sealed = plain.as_bytes().to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::empty(),
                &mut sealed,
            )
            .map_err(|_| CipherError::Decrypt)?;
        let mut out = nonce.to_vec();
        out.append(&mut sealed);
        Ok(out)
    }

    /// # Errors
    /// [`CipherError::Decrypt`] for bytes this key did not encrypt.
    pub fn decrypt(&self, stored: &[u8]) -> Result<String, CipherError> {
        if stored.len() < NONCE_LEN {
            return Err(CipherError::Decrypt);
        }
        let (nonce, sealed) = stored.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| CipherError::Decrypt)?;
        let mut buffer = sealed.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::empty(), &mut buffer)
            .map_err(|_| CipherError::Decrypt)?;
        String::from_utf8(plain.to_vec()).map_err(|_| CipherError::Decrypt)
    }
}

/// A new secret: the prefix and 32 random bytes in base64url.
///
/// # Errors
/// No randomness.
pub fn new_secret() -> Result<String, CipherError> {
    use base64::Engine;
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| CipherError::Random(e.to_string()))?;
    Ok(format!(
        "{SECRET_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    ))
}

/// The `AIM-Signature` value: `t=<timestamp>` and one `v1=<hex HMAC-SHA256 of
/// "<timestamp>.<body>">` per secret.
#[must_use]
pub fn signature(secrets: &[&str], timestamp: i64, body: &[u8]) -> String {
    let mut header = format!("t={timestamp}");
    for secret in secrets {
        let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
        let mut context = hmac::Context::with_key(&key);
        context.update(timestamp.to_string().as_bytes());
        context.update(b".");
        context.update(body);
        header.push_str(",v1=");
        header.push_str(&hex::encode(context.sign().as_ref()));
    }
    header
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

    #[test]
    fn a_secret_round_trips_and_another_key_cannot_read_it() {
        let cipher = Cipher::from_hex(KEY).expect("key");
        let secret = new_secret().expect("random");
        assert!(secret.starts_with(SECRET_PREFIX));
        let stored = cipher.encrypt(&secret).expect("sealed");
        assert!(
            !stored
                .windows(8)
                .any(|w| secret.as_bytes().windows(8).any(|s| s == w))
        );
        assert_eq!(cipher.decrypt(&stored).expect("opens"), secret);
        let other = Cipher::from_hex(&KEY.replace("1f", "ff")).expect("key");
        assert!(other.decrypt(&stored).is_err());
        assert!(cipher.decrypt(&stored[..5]).is_err());
        assert!(Cipher::from_hex("abcd").is_err());
    }

    #[test]
    fn the_signature_is_hmac_sha256_of_timestamp_dot_body() {
        // Computed independently: printf '1700000000.{"a":1}' | openssl dgst -sha256 -hmac secret
        assert_eq!(
            signature(&["secret"], 1_700_000_000, br#"{"a":1}"#),
            "t=1700000000,v1=49f24e537407743fa4a0242bb63b94b9a47ee99cbbe071ccd8a22550ae411686"
        );
        let two = signature(&["a", "b"], 1, b"x");
        assert_eq!(two.matches("v1=").count(), 2);
    }
}
