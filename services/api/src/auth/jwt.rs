//! User tokens: HS256 JWTs with `exp`, `iat`, `iss` checked and a small leeway. Access and
//! refresh tokens carry a different `typ`, so a refresh token is never accepted as an access
//! token (and the reverse).

use std::time::Duration;

use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use aim_store::model::Role;

const ISSUER: &str = "aim";
/// Tolerated clock difference between replicas.
const LEEWAY_S: u64 = 30;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenType {
    Access,
    Refresh,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub sub: Uuid,
    pub org: Uuid,
    /// The role at issue time; requests re-check the current role in the database.
    pub role: Role,
    pub typ: TokenType,
    /// Refresh tokens: the id stored server-side, so it can be used once.
    pub jti: Uuid,
    /// The session (token family) the token belongs to: every request checks that it has not
    /// ended, so logout, a deactivation or a replayed refresh token end its access tokens at once.
    pub sid: Uuid,
    pub iat: i64,
    pub exp: i64,
    pub iss: String,
}

/// An issued token and when it expires.
#[derive(Debug, Clone)]
pub struct Issued {
    pub token: String,
    pub jti: Uuid,
    pub expires_at: DateTime<Utc>,
}

/// Signs and checks tokens with the service's secret.
pub struct Tokens {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    access_ttl: Duration,
    refresh_ttl: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("token rejected: {0}")]
    Invalid(#[from] jsonwebtoken::errors::Error),
    #[error("wrong token type")]
    WrongType,
    #[error("token lifetime out of range or issued in the future")]
    Lifetime,
}

impl Tokens {
    pub fn new(secret: &SecretString, access_ttl: Duration, refresh_ttl: Duration) -> Self {
        let bytes = secret.expose_secret().as_bytes();
        // Pinned: a token naming any other algorithm ("none", RS256…) is rejected.
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_required_spec_claims(&["exp", "iat", "iss", "sub"]);
        validation.leeway = LEEWAY_S;
        Self {
            encoding: EncodingKey::from_secret(bytes),
            decoding: DecodingKey::from_secret(bytes),
            validation,
            access_ttl,
            refresh_ttl,
        }
    }

    /// # Errors
    /// When signing fails or the lifetime overflows.
    pub fn issue(
        &self,
        typ: TokenType,
        user: Uuid,
        organization: Uuid,
        role: Role,
        session: Uuid,
    ) -> Result<Issued, TokenError> {
        let ttl = match typ {
            TokenType::Access => self.access_ttl,
            TokenType::Refresh => self.refresh_ttl,
        };
        let now = Utc::now();
        let expires_at = chrono::Duration::from_std(ttl)
            .ok()
            .and_then(|d| now.checked_add_signed(d))
            .ok_or(TokenError::Lifetime)?;
        let jti = Uuid::now_v7();
        let claims = Claims {
            sub: user,
            org: organization,
            role,
            typ,
            jti,
            sid: session,
            iat: now.timestamp(),
            exp: expires_at.timestamp(),
            iss: ISSUER.to_owned(),
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)?;
        Ok(Issued {
            token,
            jti,
            expires_at,
        })
    }

    /// Checks signature, issuer, expiry and that the token is of the `expected` type.
    ///
    /// # Errors
    /// [`TokenError`]; callers answer 401 whatever the reason.
    pub fn verify(&self, token: &str, expected: TokenType) -> Result<Claims, TokenError> {
        let claims =
            jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)?.claims;
        if claims.typ != expected {
            return Err(TokenError::WrongType);
        }
        // jsonwebtoken checks `exp` but not that `iat` is not in the future.
        let leeway = i64::try_from(LEEWAY_S).unwrap_or(i64::MAX);
        if claims.iat > Utc::now().timestamp().saturating_add(leeway) {
            return Err(TokenError::Lifetime);
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens() -> Tokens {
        Tokens::new(
            &SecretString::from("0123456789abcdef0123456789abcdef".to_owned()),
            Duration::from_secs(60),
            Duration::from_secs(600),
        )
    }

    #[test]
    fn access_and_refresh_tokens_are_not_interchangeable() {
        let t = tokens();
        let (user, org) = (Uuid::now_v7(), Uuid::now_v7());
        let access = t
            .issue(TokenType::Access, user, org, Role::Admin, Uuid::nil())
            .expect("issue");
        let refresh = t
            .issue(TokenType::Refresh, user, org, Role::Admin, Uuid::nil())
            .expect("issue");
        let claims = t
            .verify(&access.token, TokenType::Access)
            .expect("valid access");
        assert_eq!(
            (claims.sub, claims.org, claims.role),
            (user, org, Role::Admin)
        );
        assert!(t.verify(&refresh.token, TokenType::Access).is_err());
        assert!(t.verify(&access.token, TokenType::Refresh).is_err());
        t.verify(&refresh.token, TokenType::Refresh)
            .expect("valid refresh");
    }

    #[test]
    fn tokens_from_another_secret_or_tampered_are_rejected() {
        let t = tokens();
        let other = Tokens::new(
            &SecretString::from("another-secret-another-secret-xx".to_owned()),
            Duration::from_secs(60),
            Duration::from_secs(60),
        );
        let issued = other
            .issue(
                TokenType::Access,
                Uuid::nil(),
                Uuid::nil(),
                Role::Viewer,
                Uuid::nil(),
            )
            .expect("issue");
        assert!(t.verify(&issued.token, TokenType::Access).is_err());

        let mine = t
            .issue(
                TokenType::Access,
                Uuid::nil(),
                Uuid::nil(),
                Role::Viewer,
                Uuid::nil(),
            )
            .expect("issue");
        let mut parts: Vec<String> = mine.token.split('.').map(str::to_owned).collect();
        parts[1].push('A');
        assert!(t.verify(&parts.join("."), TokenType::Access).is_err());
    }

    #[test]
    fn unsigned_tokens_are_rejected() {
        use base64::Engine;
        let encode = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        let header = encode(br#"{"alg":"none","typ":"JWT"}"#);
        let now = Utc::now().timestamp();
        let body = encode(
            format!(
                r#"{{"sub":"{0}","org":"{0}","role":"admin","typ":"access","jti":"{0}","iat":{now},"exp":{exp},"iss":"aim"}}"#,
                Uuid::nil(),
                exp = now + 600
            )
            .as_bytes(),
        );
        assert!(
            tokens()
                .verify(&format!("{header}.{body}."), TokenType::Access)
                .is_err()
        );
    }

    #[test]
    fn tokens_issued_in_the_future_are_rejected() {
        let t = tokens();
        let now = Utc::now().timestamp();
        let claims = Claims {
            sub: Uuid::nil(),
            org: Uuid::nil(),
            role: Role::Admin,
            typ: TokenType::Access,
            jti: Uuid::nil(),
            sid: Uuid::nil(),
            iat: now + 3600,
            exp: now + 7200,
            iss: ISSUER.to_owned(),
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &t.encoding)
            .expect("encode");
        assert!(t.verify(&token, TokenType::Access).is_err());
    }

    #[test]
    fn expired_tokens_are_rejected_past_the_leeway() {
        let t = Tokens::new(
            &SecretString::from("0123456789abcdef0123456789abcdef".to_owned()),
            Duration::from_secs(1),
            Duration::from_secs(1),
        );
        let now = Utc::now().timestamp();
        let claims = Claims {
            sub: Uuid::nil(),
            org: Uuid::nil(),
            role: Role::Admin,
            typ: TokenType::Access,
            jti: Uuid::nil(),
            sid: Uuid::nil(),
            iat: now - 1000,
            exp: now - 100,
            iss: ISSUER.to_owned(),
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &t.encoding)
            .expect("encode");
        assert!(t.verify(&token, TokenType::Access).is_err());
    }
}
