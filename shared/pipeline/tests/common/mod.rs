//! What the pipeline's test binaries share.

use std::sync::Arc;
use std::time::SystemTime;

use aim_pipeline::ApiCallEvent;
use uuid::Uuid;

/// The `i`-th call of an organization: a key-authenticated POST, its request size `i`.
pub fn event(organization: Uuid, i: u64) -> ApiCallEvent {
    ApiCallEvent {
        id: Uuid::now_v7(),
        organization_id: organization,
        // Fifty agents, like a real organization, not one per call.
        agent_id: Some(Uuid::from_u128(u128::from(i % 50) + 1)),
        user_id: None,
        method: http::Method::POST,
        endpoint: Arc::from("/api/v1/agents/{id}/verify-action"),
        status_code: 200,
        duration_ms: 0.5,
        request_size_bytes: i,
        response_size_bytes: 100,
        user_agent: Some(http::HeaderValue::from_static("test")),
        ip_address: Some("127.0.0.1".parse().expect("ip")),
        error_message: None,
        request_id: Some(http::HeaderValue::from_str(&format!("req-{i}")).expect("ascii")),
        called_at: SystemTime::now(),
    }
}
