//! `/v1/events`: catch-up reads of the event log and a live Server-Sent Events stream that
//! resumes from `Last-Event-ID`.

use std::{collections::VecDeque, convert::Infallible, time::Duration};

use axum::{
    Json,
    extract::State,
    http::HeaderMap,
    response::sse::{Event as SseEvent, KeepAlive, Sse},
};
use futures::Stream;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use wharf_store::EventRow;

use super::{
    AppState,
    error::{ApiError, ErrorBody},
    extract::QueryPairs,
};
use crate::services::{Caller, events::envelope};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_events))
        .routes(routes!(stream_events))
}

/// A page of events.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventListView {
    /// Envelopes `{id, type, timestamp, cursor, account_id, session_id, message_id, data}`.
    #[schema(value_type = Vec<Object>)]
    pub data: Vec<Value>,
    /// Pass as `after` for the next page (the last cursor read, or `after` itself).
    pub next_cursor: i64,
}

fn cursor(query: &QueryPairs, headers: Option<&HeaderMap>) -> Result<i64, ApiError> {
    let from_header = headers
        .and_then(|h| h.get("last-event-id"))
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty());
    // On a reconnect the browser resends the same URL: the header is the newer position.
    match from_header.or(query.get("after")) {
        None => Ok(0),
        Some(raw) => {
            raw.parse::<i64>().ok().filter(|c| *c >= 0).ok_or_else(|| {
                ApiError::invalid("after", "must be a cursor: a non-negative integer")
            })
        }
    }
}

/// GET /v1/events — events after a cursor, oldest first, for catching up.
#[utoipa::path(get, path = "/v1/events", tag = "events",
    params(("after" = Option<i64>, Query, minimum = 0, description = "Cursor; 0 (default) reads from the oldest event kept."),
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 100, description = "1..100, default 50.")),
    responses((status = 200, body = EventListView), (status = 401, body = ErrorBody),
        (status = 410, body = ErrorBody, description = "`cursor_expired`: events after the cursor were removed by retention; `oldest_cursor` is where to resume."),
        (status = 422, body = ErrorBody)))]
async fn list_events(
    State(app): State<AppState>,
    caller: Caller,
    query: QueryPairs,
) -> Result<Json<EventListView>, ApiError> {
    query.only(&["after", "limit"])?;
    let after = cursor(&query, None)?;
    let limit = query.limit()?;
    let (rows, next_cursor) = app.services.events_after(&caller, after, limit).await?;
    Ok(Json(EventListView {
        data: rows.iter().map(envelope).collect(),
        next_cursor,
    }))
}

/// GET /v1/events/stream — Server-Sent Events: each event as `id: <cursor>`,
/// `event: <type>`, `data: <envelope>`; reconnect with `Last-Event-ID` (or `?after=`) to
/// resume without a gap.
#[utoipa::path(get, path = "/v1/events/stream", tag = "events",
    params(("after" = Option<i64>, Query, minimum = 0, description = "Cursor to start after (else `Last-Event-ID`, else 0).")),
    responses((status = 200, content_type = "text/event-stream", description = "The stream."), (status = 401, body = ErrorBody),
        (status = 410, body = ErrorBody, description = "`cursor_expired`: events after the cursor were removed by retention; `oldest_cursor` is where to resume."),
        (status = 422, body = ErrorBody)))]
async fn stream_events(
    State(app): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    query: QueryPairs,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    query.only(&["after"])?;
    let after = cursor(&query, Some(&headers))?;
    app.services.check_event_cursor(&caller, after).await?;
    let key = super::auth::presented_hash(&headers);
    Ok(event_stream(&app, caller, key, after))
}

/// The live stream of `caller`'s events after `after`; it ends when `key` (the credential
/// the stream was opened with) is revoked, or the server shuts down. The dashboard serves it
/// too, for its cookie's key.
pub(super) fn event_stream(
    app: &AppState,
    caller: Caller,
    key: Option<wharf_core::TokenHash>,
    after: i64,
) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>> + use<>> {
    let state = StreamState {
        key,
        key_checked: tokio::time::Instant::now(),
        appended: app.services.subscribe_events(),
        services: app.services.clone(),
        caller,
        cursor: after,
        buffer: VecDeque::new(),
        shutdown: app.shutdown.clone(),
    };
    let stream = futures::stream::unfold(state, |mut s| async move {
        loop {
            if s.shutdown.is_cancelled() {
                return None;
            }
            // A revoked key ends its stream (checked at most once a second).
            if s.key_checked.elapsed() >= KEY_CHECK_INTERVAL {
                s.key_checked = tokio::time::Instant::now();
                if let Some(key) = &s.key
                    && let Ok(false) = s.services.key_is_live(key).await
                {
                    return None;
                }
            }
            if let Some(e) = s.buffer.pop_front() {
                let event = SseEvent::default()
                    .id(e.seq.to_string())
                    .event(e.kind.clone())
                    .data(envelope(&e).to_string());
                return Some((Ok(event), s));
            }
            match s.services.events_after(&s.caller, s.cursor, 100).await {
                Ok((rows, next)) => {
                    let moved = next != s.cursor;
                    s.cursor = next;
                    if !rows.is_empty() {
                        s.buffer.extend(rows);
                        continue;
                    }
                    if moved {
                        // Only events this caller does not see: read on.
                        continue;
                    }
                }
                // Fell behind retention: the stream ends, and resuming answers 410.
                Err(crate::ServiceError::CursorExpired { .. }) => return None,
                Err(e) => tracing::warn!(error = %e, "event stream read failed"),
            }
            // Wait for new events; look again every second for those of other instances.
            tokio::select! {
                _ = s.shutdown.cancelled() => return None,
                _ = s.appended.changed() => {}
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

/// How often an open stream checks that its key is still live.
const KEY_CHECK_INTERVAL: Duration = Duration::from_secs(1);

struct StreamState {
    /// The hash of the key the stream was opened with.
    key: Option<wharf_core::TokenHash>,
    key_checked: tokio::time::Instant,
    services: crate::services::Services,
    appended: tokio::sync::watch::Receiver<u64>,
    caller: Caller,
    cursor: i64,
    buffer: VecDeque<EventRow>,
    shutdown: tokio_util::sync::CancellationToken,
}
