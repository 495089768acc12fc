//! The identity domain's types as they are stored: roles, statuses, and the rows the API
//! returns. Enums are stored as `text` with a `CHECK` constraint, so adding a value is a plain
//! migration, and they parse at the edge (serde, `FromStr`) so the rest of the code never sees a
//! bad value.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// A user's role in their organization, from most to least powerful.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, sqlx::Type, ToSchema)]
#[serde(rename_all = "lowercase")]
#[sqlx(type_name = "text", rename_all = "lowercase")]
pub enum Role {
    Admin,
    Manager,
    Member,
    Viewer,
}

impl Role {
    fn rank(self) -> u8 {
        match self {
            Self::Admin => 3,
            Self::Manager => 2,
            Self::Member => 1,
            Self::Viewer => 0,
        }
    }

    /// Whether this role has at least the powers of `other`.
    pub fn at_least(self, other: Self) -> bool {
        self.rank() >= other.rank()
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Manager => "manager",
            Self::Member => "member",
            Self::Viewer => "viewer",
        }
    }
}

/// An agent's lifecycle state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, sqlx::Type, ToSchema)]
#[serde(rename_all = "lowercase")]
#[sqlx(type_name = "text", rename_all = "lowercase")]
pub enum AgentStatus {
    Pending,
    Verified,
    Suspended,
    Revoked,
}

/// The outcome of a verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, sqlx::Type, ToSchema)]
#[serde(rename_all = "lowercase")]
#[sqlx(type_name = "text", rename_all = "lowercase")]
pub enum VerificationStatus {
    Success,
    Failed,
    Pending,
    Timeout,
}

/// What the organization's action rules said of a verification, before the agent's status and
/// score were considered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, sqlx::Type, ToSchema)]
#[serde(rename_all = "lowercase")]
#[sqlx(type_name = "text", rename_all = "lowercase")]
pub enum RuleOutcome {
    Allowed,
    Denied,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
pub struct Organization {
    pub id: Uuid,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

/// A user as the API shows it: never the password hash.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
pub struct User {
    pub id: Uuid,
    pub organization_id: Uuid,
    pub email: String,
    pub name: String,
    pub role: Role,
    pub is_active: bool,
    pub last_login_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// What login needs to check a password; kept apart from [`User`] so the hash cannot be
/// serialised by accident.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct UserCredentials {
    pub id: Uuid,
    pub organization_id: Uuid,
    pub role: Role,
    pub is_active: bool,
    pub password_hash: String,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
pub struct Agent {
    pub id: Uuid,
    pub organization_id: Uuid,
    pub name: String,
    pub description: String,
    pub agent_type: String,
    pub status: AgentStatus,
    pub trust_score: f64,
    #[schema(value_type = Object)]
    pub metadata: serde_json::Value,
    pub created_by: Option<Uuid>,
    pub last_active: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// An API key as lists show it: the display prefix, never the key or its hash.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
pub struct ApiKey {
    pub id: Uuid,
    pub agent_id: Uuid,
    pub name: String,
    pub prefix: String,
    pub created_by: Option<Uuid>,
    pub expires_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// What authenticating an agent key needs, fetched once and then cached.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct KeyOwner {
    pub key_id: Uuid,
    pub agent_id: Uuid,
    pub organization_id: Uuid,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub agent_status: AgentStatus,
    pub agent_deleted: bool,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
pub struct VerificationEvent {
    pub id: Uuid,
    pub organization_id: Uuid,
    pub agent_id: Uuid,
    pub action: String,
    pub resource: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub context: Option<serde_json::Value>,
    pub status: VerificationStatus,
    pub reason: Option<String>,
    /// What the action's rules said; `null` for events recorded before the rules existed.
    pub rule_outcome: Option<RuleOutcome>,
    pub duration_ms: f64,
    pub started_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
pub struct TrustScoreChange {
    pub id: Uuid,
    pub agent_id: Uuid,
    pub trust_score: f64,
    pub previous_score: Option<f64>,
    pub change_reason: String,
    /// `null` for a user's change: the user. Otherwise the service.
    pub changed_by: Option<Uuid>,
    /// The factors (value and weight of each) behind a score the service computed, or the
    /// override a user set; `null` for earlier rows.
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<serde_json::Value>,
    pub recorded_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
pub struct AuditEvent {
    pub id: Uuid,
    pub organization_id: Option<Uuid>,
    pub actor_type: String,
    pub actor_id: Option<Uuid>,
    pub action: String,
    pub target_type: Option<String>,
    pub target_id: Option<Uuid>,
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
    pub ip_address: Option<String>,
    pub request_id: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// Who is acting, for the audit trail.
#[derive(Debug, Clone, Default)]
pub struct Actor {
    pub kind: ActorKind,
    pub id: Option<Uuid>,
    pub ip: Option<String>,
    pub request_id: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ActorKind {
    User,
    Agent,
    #[default]
    System,
    Anonymous,
}

impl ActorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Agent => "agent",
            Self::System => "system",
            Self::Anonymous => "anonymous",
        }
    }
}

/// A page of a list: `limit` rows from `offset`; both validated by the caller.
#[derive(Debug, Clone, Copy)]
pub struct Page {
    pub limit: i64,
    pub offset: i64,
}
