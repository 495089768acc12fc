//! `GET /api/v1/analytics/export`: the organization's raw calls of a range (at most 31 days),
//! streamed as CSV or newline-delimited JSON in pages of a few thousand rows, so memory stays
//! bounded whatever the range holds. The one analytics read that touches raw rows.

use aim_store::analytics::ExportRow;
use aim_store::model::Role;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::Principal;
use crate::error::{ApiError, ErrorEnvelope};
use crate::extract::ApiQuery;
use crate::state::AppState;

const MAX_DAYS: i64 = 31;
const PAGE: i64 = 5_000;

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(export))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ExportQuery {
    /// RFC 3339; default 24 hours before `to`.
    from: Option<DateTime<Utc>>,
    /// RFC 3339; default now.
    to: Option<DateTime<Utc>>,
    /// `csv` (default) or `ndjson`. In CSV, a text cell starting with `=`, `+`, `-`, `@`, a
    /// tab or a carriage return is prefixed with `'` so that spreadsheets do not run it as a
    /// formula.
    #[param(schema_with = crate::openapi::export_format)]
    format: Option<String>,
}

#[derive(Debug, Clone, Copy)]
enum Format {
    Csv,
    Ndjson,
}

struct Cursor {
    state: AppState,
    organization: Uuid,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    after: Option<(DateTime<Utc>, Uuid)>,
    format: Format,
    first: bool,
    done: bool,
}

const CSV_HEADER: [&str; 14] = [
    "id",
    "called_at",
    "agent_id",
    "user_id",
    "method",
    "endpoint",
    "status_code",
    "duration_ms",
    "request_size_bytes",
    "response_size_bytes",
    "user_agent",
    "ip_address",
    "error_message",
    "request_id",
];

/// A text cell as a spreadsheet may safely open it (OWASP, CSV injection): a cell a client
/// controls (a user agent, a request id, a path) starting with `=`, `+`, `-`, `@`, a tab or a
/// carriage return would be read as a formula, so it gets a leading `'`, which spreadsheets
/// show as text. Numbers, times and ids are written by the service and never start so.
fn text_cell(value: &str) -> std::borrow::Cow<'_, str> {
    if value.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{value}").into()
    } else {
        value.into()
    }
}

fn csv_record(row: &ExportRow) -> [String; 14] {
    let id = |id: Option<Uuid>| id.map(|id| id.to_string()).unwrap_or_default();
    let text = |value: Option<&str>| value.map(|v| text_cell(v).into_owned()).unwrap_or_default();
    [
        row.id.to_string(),
        row.called_at
            .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
        id(row.agent_id),
        id(row.user_id),
        text_cell(&row.method).into_owned(),
        text_cell(&row.endpoint).into_owned(),
        row.status_code.to_string(),
        row.duration_ms.to_string(),
        row.request_size_bytes.to_string(),
        row.response_size_bytes.to_string(),
        text(row.user_agent.as_deref()),
        text(row.ip_address.as_deref()),
        text(row.error_message.as_deref()),
        text(row.request_id.as_deref()),
    ]
}

fn encode(rows: &[ExportRow], format: Format, header: bool) -> Result<Bytes, String> {
    match format {
        Format::Csv => {
            let mut writer = csv::Writer::from_writer(Vec::new());
            if header {
                writer.write_record(CSV_HEADER).map_err(|e| e.to_string())?;
            }
            for row in rows {
                writer
                    .write_record(csv_record(row))
                    .map_err(|e| e.to_string())?;
            }
            writer
                .into_inner()
                .map(Bytes::from)
                .map_err(|e| e.to_string())
        }
        Format::Ndjson => {
            let mut out = Vec::new();
            for row in rows {
                serde_json::to_writer(&mut out, row).map_err(|e| e.to_string())?;
                out.push(b'\n');
            }
            Ok(Bytes::from(out))
        }
    }
}

/// The caller's raw calls, streamed, oldest first. `from` must be before `to`, and the range at
/// most 31 days (a 400 `invalid_parameter` otherwise).
#[utoipa::path(get, path = "/api/v1/analytics/export", tag = "analytics", params(ExportQuery),
    security(("user_token" = [])), responses(
    (status = 200, description = "text/csv or application/x-ndjson, streamed"),
    (status = 400, body = ErrorEnvelope),
    (status = 403, body = ErrorEnvelope),
))]
async fn export(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(query): ApiQuery<ExportQuery>,
) -> Result<Response, ApiError> {
    principal.user_with(Role::Viewer)?;
    let format = match query.format.as_deref().unwrap_or("csv") {
        "csv" => Format::Csv,
        "ndjson" => Format::Ndjson,
        _ => {
            return Err(ApiError::invalid_parameter("format must be csv or ndjson"));
        }
    };
    let to = query.to.unwrap_or_else(Utc::now);
    let from = query.from.unwrap_or(to - Duration::hours(24));
    if from >= to {
        return Err(ApiError::invalid_parameter("from must be before to"));
    }
    if to - from > Duration::days(MAX_DAYS) {
        return Err(ApiError::invalid_parameter(
            "the range is capped at 31 days",
        ));
    }
    // Refused with a 503 while the database is known to be away, before any header is sent.
    state.db()?;
    let cursor = Cursor {
        organization: principal.organization_id(),
        state,
        from,
        to,
        after: None,
        format,
        first: true,
        done: false,
    };
    let stream = futures_util::stream::unfold(cursor, |mut c| async move {
        if c.done {
            return None;
        }
        let page = match c.state.db() {
            Ok(pool) => {
                aim_store::analytics::export_page(pool, c.organization, c.from, c.to, c.after, PAGE)
                    .await
                    .map_err(ApiError::from)
            }
            Err(refused) => Err(refused),
        };
        let chunk = match page {
            Ok(rows) => {
                c.done = (rows.len() as i64) < PAGE;
                c.after = rows.last().map(|r| (r.called_at, r.id));
                let chunk = encode(&rows, c.format, c.first);
                c.first = false;
                chunk.map_err(std::io::Error::other)
            }
            Err(e) => {
                // Headers are sent already: the error can only end the stream, and is logged.
                tracing::error!(error = %e, "export stopped by a database error");
                c.done = true;
                Err(std::io::Error::other(e.to_string()))
            }
        };
        Some((chunk, c))
    });
    let content_type = match format {
        Format::Csv => "text/csv; charset=utf-8",
        Format::Ndjson => "application/x-ndjson",
    };
    Ok((
        [(header::CONTENT_TYPE, content_type)],
        Body::from_stream(stream),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_a_spreadsheet_would_run_as_formulas_are_neutralised() {
        for formula in ["=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx"] {
            assert_eq!(text_cell(formula), format!("'{formula}"), "{formula:?}");
        }
        for plain in ["/api/v1/agents", "curl/8.0", "", "a=b"] {
            assert_eq!(text_cell(plain), plain);
        }
    }
}
