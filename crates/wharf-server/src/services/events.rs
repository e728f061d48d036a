//! The event log as consumers see it: one envelope shape for webhooks, `/v1/events` and the
//! SSE stream, and catch-up reads filtered to what the caller may see.

use serde_json::{Value, json};
use wharf_store::{EventRow, Store};

use super::Caller;
use crate::ServiceError;

/// The JSON every consumer receives for an event.
pub fn envelope(e: &EventRow) -> Value {
    json!({
        "id": e.id,
        "type": e.kind,
        "timestamp": wharf_core::time::rfc3339(e.created_at),
        "cursor": e.seq,
        "account_id": e.account_id,
        "session_id": e.session_id,
        "message_id": e.message_id,
        "data": e.payload,
    })
}

/// Reads the caller's events after `after`, at most `limit`. A session key sees its own
/// session's events only; the returned cursor is where to resume (it moves past events the
/// caller does not see, so paging never stalls).
///
/// Cursor 0 reads from the oldest event kept. A cursor before events that retention removed
/// fails with [`ServiceError::CursorExpired`] naming the oldest available cursor: reading on
/// would skip what is gone without telling.
pub async fn catch_up(
    store: &Store,
    caller: &Caller,
    after: i64,
    limit: i64,
) -> Result<(Vec<EventRow>, i64), ServiceError> {
    let mut after = after;
    let rows = store.list_events(caller.account_id, after, limit).await?;
    // The log continues right after the cursor: nothing can be missing (the common case,
    // answered without another read).
    if rows.first().is_none_or(|e| e.seq != after + 1) {
        let pruned = store.events_pruned_through(caller.account_id).await?;
        if after < pruned {
            if after > 0 {
                return Err(ServiceError::CursorExpired {
                    field: "after",
                    oldest: pruned,
                });
            }
            // From the start: from where the log starts now.
            after = pruned;
        }
    }
    let next = rows.last().map_or(after, |e| e.seq);
    let own = caller.session_id.map(|s| s.to_string());
    let visible = rows
        .into_iter()
        .filter(|e| own.is_none() || e.session_id == own)
        .collect();
    Ok((visible, next))
}

/// Fails with [`ServiceError::CursorExpired`] when events after `after` (not 0) were removed
/// by retention.
pub async fn check_cursor(store: &Store, caller: &Caller, after: i64) -> Result<(), ServiceError> {
    if after > 0 {
        let pruned = store.events_pruned_through(caller.account_id).await?;
        if after < pruned {
            return Err(ServiceError::CursorExpired {
                field: "after",
                oldest: pruned,
            });
        }
    }
    Ok(())
}
