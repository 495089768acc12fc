//! Authentication: who is calling. A request carries either a user's access token (a JWT) or
//! an agent's API key (`aim_…`), in `Authorization: Bearer` or, for keys, `X-API-Key`. The
//! [`Principal`] extractor turns either into the caller's organization and identity; handlers
//! then check the role they need.

pub mod api_keys;
pub mod jwt;
pub mod password;
mod principal;
pub mod rate_limit;

pub use principal::{ClientMeta, Principal};
