//! The ids a request turns out to be about, recorded on its span (the HTTP layer declares
//! `account_id`, `session_id` and `message_id` on it, empty): every log line of the request,
//! its closing line included, then carries them. Outside a request the current span has no
//! such fields and recording is a no-op.

use tracing::{Span, field::display};
use wharf_core::{AccountId, MessageId, SessionId};

/// The account of the authenticated caller.
pub fn account(id: AccountId) {
    Span::current().record("account_id", display(id));
}

/// The session the request acts on.
pub fn session(id: SessionId) {
    Span::current().record("session_id", display(id));
}

/// The message the request creates or acts on (and its session).
pub fn message(id: MessageId, session: SessionId) {
    let span = Span::current();
    span.record("message_id", display(id));
    span.record("session_id", display(session));
}
