//! Poll votes name the chosen options by the SHA-256 of their names; the poll they answer,
//! when this session has it, names them in words.

use sqlx::AnyConnection;
use wharf_core::{AccountId, SessionId, message::Content};
use whatsapp_rust::wacore::poll::compute_option_hash;

use crate::Result;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Fills a received vote's `target` and `options` from the poll (of `owner`, in `session`)
/// it answers; hashes no option matches stay in `option_hashes`.
pub(super) async fn name_vote(
    conn: &mut AnyConnection,
    session: SessionId,
    owner: AccountId,
    content: &mut Content,
) -> Result<()> {
    let Content::PollVote {
        target: target @ None,
        target_provider_id,
        options,
        option_hashes,
    } = content
    else {
        return Ok(());
    };
    if target_provider_id.is_empty() {
        return Ok(());
    }
    let found: Option<(String, String)> = sqlx::query_as(
        "SELECT id, content FROM messages WHERE session_id = $1 AND provider_msg_id = $2 AND account_id = $3",
    )
    .bind(session)
    .bind(&*target_provider_id)
    .bind(owner)
    .fetch_optional(conn)
    .await?;
    let Some((id, poll)) = found else {
        return Ok(());
    };
    *target = id.parse().ok();
    let Ok(Content::Poll { options: names, .. }) = serde_json::from_str::<Content>(&poll) else {
        return Ok(());
    };
    let mut unknown = Vec::new();
    for hash in option_hashes.drain(..) {
        match names.iter().find(|n| hex(&compute_option_hash(n)) == hash) {
            Some(name) => options.push(name.clone()),
            None => unknown.push(hash),
        }
    }
    *option_hashes = unknown;
    Ok(())
}
