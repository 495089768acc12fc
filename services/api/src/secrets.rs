//! The JWT signing secret. Production is given one (`JWT_SECRET`, the same on every replica);
//! elsewhere one is generated on first start and kept in `$AIM_DATA_DIR/jwt_secret` (mode 0600),
//! so a restart still accepts the tokens it issued.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use anyhow::Context;
use secrecy::SecretString;

use crate::config::{AuthConfig, Config};

const SECRET_FILE: &str = "jwt_secret";
const WEBHOOK_KEY_FILE: &str = "webhook_encryption_key";

pub(crate) fn jwt_secret(config: &Config) -> anyhow::Result<SecretString> {
    if let Some(secret) = &config.auth.jwt_secret {
        return Ok(secret.clone());
    }
    let path = config.data_dir.join(SECRET_FILE);
    let secret = read_or_generate(&path)?;
    tracing::warn!(
        path = %path.display(),
        "JWT_SECRET is not set: using the secret generated in this data folder; \
         set JWT_SECRET (the same on every replica) in production"
    );
    Ok(secret)
}

/// The key webhook secrets are encrypted with: `AIM_WEBHOOK_ENCRYPTION_KEY`, or one generated
/// on first start and kept in `$AIM_DATA_DIR/webhook_encryption_key` (mode 0600), so a restart
/// can still read the secrets it stored.
pub(crate) fn webhook_key(config: &Config) -> anyhow::Result<SecretString> {
    if let Some(key) = &config.webhooks.encryption_key {
        return Ok(key.clone());
    }
    let path = config.data_dir.join(WEBHOOK_KEY_FILE);
    let key = read_or_generate(&path)?;
    tracing::warn!(
        path = %path.display(),
        "AIM_WEBHOOK_ENCRYPTION_KEY is not set: using the key generated in this data folder; \
         set it (the same on every replica) in production"
    );
    Ok(key)
}

fn read_or_generate(path: &Path) -> anyhow::Result<SecretString> {
    match std::fs::read_to_string(path) {
        Ok(text) => return validate(path, text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|e| anyhow::anyhow!("no randomness for the JWT secret: {e}"))?;
    let secret = hex::encode(bytes);
    let created = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path);
    match created {
        Ok(mut file) => {
            file.write_all(secret.as_bytes())
                .and_then(|()| file.sync_all())
                .with_context(|| format!("writing {}", path.display()))?;
            Ok(SecretString::from(secret))
        }
        // Another process on the same folder generated one first: use theirs.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            validate(path, text)
        }
        Err(e) => Err(e).with_context(|| format!("creating {}", path.display())),
    }
}

fn validate(path: &Path, text: String) -> anyhow::Result<SecretString> {
    let trimmed = text.trim();
    anyhow::ensure!(
        trimmed.len() >= AuthConfig::MIN_JWT_SECRET_BYTES,
        "{} holds a secret shorter than {} bytes; delete it to generate a \
         new one (what it protected stops working) or set the variable",
        path.display(),
        AuthConfig::MIN_JWT_SECRET_BYTES
    );
    Ok(SecretString::from(trimmed.to_owned()))
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    #[test]
    fn generated_secret_is_kept_private_and_reused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("nested").join(SECRET_FILE);
        let first = read_or_generate(&path).expect("generated");
        assert_eq!(first.expose_secret().len(), 64);
        let mode = std::fs::metadata(&path).expect("file").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let second = read_or_generate(&path).expect("read back");
        assert_eq!(first.expose_secret(), second.expose_secret());
    }

    #[test]
    fn a_truncated_secret_file_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(SECRET_FILE);
        std::fs::write(&path, "short").expect("write");
        let err = read_or_generate(&path).expect_err("too short");
        assert!(err.to_string().contains("shorter"), "{err}");
    }
}
