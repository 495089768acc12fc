//! Sending webhooks without handing tenants the service's network. An organization's endpoint
//! URL is checked when registered ([`Destination::parse`]) and again at every delivery: the
//! host is resolved once, every address checked ([`forbidden`]), and the connection made to a
//! checked address (no second lookup a DNS rebinding could answer differently), with no
//! redirects followed and no proxy consulted. Secrets are stored encrypted ([`Cipher`]) since
//! signing needs them back; each body is signed with HMAC-SHA256 over the timestamp and the
//! body ([`signature`]). No database here: the outbox is `aim_store::webhooks`, the loop that
//! drives it is the service's.

mod crypto;
mod destination;
mod send;

pub use crypto::{Cipher, CipherError, SECRET_PREFIX, new_secret, signature};
pub use destination::{Destination, DestinationError, forbidden};
pub use send::{Request, SendError, Sender, backoff};

/// The header carrying `t=<unix seconds>,v1=<hex>[,v1=<hex>]`: one `v1` per secret in force
/// (two during a rotation's overlap).
pub const SIGNATURE_HEADER: &str = "AIM-Signature";
/// The delivery's id, the same on every attempt: the receiver's key to de-duplicate.
pub const DELIVERY_ID_HEADER: &str = "AIM-Delivery-Id";
pub const EVENT_HEADER: &str = "AIM-Event";
