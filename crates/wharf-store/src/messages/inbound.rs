//! Inbound messages: stored once per WhatsApp id, each with its `message.received` event,
//! routed to the session's contacts.

use super::*;

impl Store {
    /// Stores inbound messages of `session` (a redelivered one, same WhatsApp id, is dropped)
    /// with a `message.received` event each. Returns the new rows.
    pub async fn ingest_inbound(
        &self,
        account: AccountId,
        session: SessionId,
        inbound: &[Inbound],
    ) -> Result<Vec<MessageRow>> {
        self.ingest_inbound_routed(account, session, inbound, None)
            .await
    }

    /// As [`Store::ingest_inbound`], on the sandbox number when `sandbox` is given: in the same
    /// transaction, a message from a phone with a pending sandbox session that it activates
    /// (any reply, or the code) activates it, with its `sandbox.activated` event and the
    /// confirmation message queued; a message from a phone with an active session belongs to
    /// that session's account (its `message.received` names the sandbox session and agent).
    pub async fn ingest_inbound_routed(
        &self,
        account: AccountId,
        session: SessionId,
        inbound: &[Inbound],
        sandbox: Option<&SandboxIngest>,
    ) -> Result<Vec<MessageRow>> {
        let mut tx = self.write.begin().await?;
        let mut rows = Vec::new();
        let mut tags = Vec::new();
        let mut activations = Vec::new();
        for m in inbound {
            let now = now_millis();
            let mut owner = account;
            let mut tag = None;
            if let Some(sb) = sandbox
                && m.chat == m.sender
                && let Some(phone) = m.sender.phone()
                && let Some(mut live) = crate::sandbox::live_of_phone(
                    &mut tx,
                    self.backend == Backend::Postgres,
                    &phone,
                    sb.now,
                )
                .await?
            {
                // A redelivered message changes nothing.
                let seen: Option<String> = sqlx::query_scalar(
                    "SELECT id FROM messages WHERE session_id = $1 AND provider_msg_id = $2",
                )
                .bind(session)
                .bind(&m.provider_id)
                .fetch_optional(&mut *tx)
                .await?;
                if seen.is_none() && live.activated_by(&m.content) {
                    crate::sandbox::activate(&mut tx, &mut live, session, sb.now, sb.active_ttl_ms)
                        .await?;
                    activations.push(live.clone());
                    if let Some(text) = &sb.confirmation {
                        let reply = sandbox_confirmation(&live, session, &m.chat, text, now);
                        insert_message(&mut tx, &reply).await?;
                        insert_send_job(&mut tx, &reply).await?;
                    }
                }
                if live.is_active_at(sb.now) {
                    owner = live.account_id;
                    tag = Some(serde_json::json!({
                        "sandbox_session_id": live.id,
                        "agent_id": live.agent_id,
                    }));
                }
            }
            let mut content = m.content.clone();
            // Reactions and replies name their message by WhatsApp id; find ours (the owner's).
            if let Content::Reaction {
                target: target @ None,
                target_provider_id,
                ..
            } = &mut content
                && !target_provider_id.is_empty()
            {
                *target = owned_message(&mut tx, session, owner, target_provider_id).await?;
            }
            // A vote names its poll by WhatsApp id and its options by hash.
            polls::name_vote(&mut tx, session, owner, &mut content).await?;
            let quoted_message_id = match &m.quoted_provider_id {
                Some(provider_id) => owned_message(&mut tx, session, owner, provider_id).await?,
                None => None,
            };
            // One identity per contact: a LID the device has a number for is stored by number.
            let (chat_jid, chat_lid) =
                changes::both_forms(&mut tx, session, &m.chat, m.chat_lid.as_ref()).await?;
            let (sender_jid, sender_lid) =
                changes::both_forms(&mut tx, session, &m.sender, m.sender_lid.as_ref()).await?;
            let row = MessageRow {
                id: MessageId::generate(),
                account_id: owner,
                session_id: session,
                direction: Direction::In,
                chat_jid,
                sender_jid: Some(sender_jid.to_string()),
                kind: content.kind(),
                content,
                status: MessageStatus::Received,
                provider_msg_id: Some(m.provider_id.clone()),
                quoted_message_id,
                failure_reason: None,
                attempts: 0,
                accepted_at: now,
                sent_at: Some(m.sent_at),
                delivered_at: None,
                read_at: None,
                played_at: None,
                failed_at: None,
                deleted_at: None,
                edited_at: None,
                updated_at: now,
                chat_lid: chat_lid.as_ref().map(ToString::to_string),
                sender_lid: sender_lid.as_ref().map(ToString::to_string),
            };
            let sql = format!(
                "{INSERT_MESSAGE} ON CONFLICT (session_id, provider_msg_id) \
                     WHERE provider_msg_id IS NOT NULL DO NOTHING"
            );
            let inserted = bind_message(sqlx::query(sqlx::AssertSqlSafe(sql)), &row)
                .execute(&mut *tx)
                .await?;
            if inserted.rows_affected() == 1 {
                changes::write_lids(&mut tx, &row).await?;
                rows.push(row);
                tags.push(tag);
            }
        }
        crate::cloud::touch_windows(&mut tx, &rows).await?;
        // The senders' contacts (CRM) change with the messages that tell of them.
        crate::contacts::touch_inbound(&mut tx, account, &rows).await?;
        let events: Vec<Event> = rows
            .iter()
            .zip(tags)
            .map(|(r, tag)| {
                let mut event = r.event(EventType::MessageReceived);
                if let (Some(tag), Some(payload)) = (tag, event.payload.as_object_mut()) {
                    payload.insert("sandbox".into(), tag);
                }
                event
            })
            .collect();
        append_events(&mut tx, &events).await?;
        tx.commit().await?;
        if !events.is_empty() || !activations.is_empty() {
            self.events_appended();
        }
        Ok(rows)
    }
}
