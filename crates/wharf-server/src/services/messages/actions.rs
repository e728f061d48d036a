//! Operations on sent messages: revoke or withdraw, edit, resend, read marks, presence;
//! each queued as an outbox job for the session's dispatcher.

use super::*;

impl MessageService {
    /// `DELETE /api/messages/{id}`: revokes a sent message for everyone; one still queued (or
    /// failed) is withdrawn at once.
    pub async fn delete(&self, caller: &Caller, id: MessageId) -> Result<(), ServiceError> {
        // A withdrawal loses a race when the message leaves meanwhile; then it is revoked
        // instead. A few rounds settle that; more means it keeps changing.
        const ROUNDS: usize = 3;
        for _ in 0..ROUNDS {
            let row = self.message(caller, id).await?;
            if row.direction != Direction::Out {
                return Err(ServiceError::conflict(
                    "invalid_state",
                    "only messages this session sent can be revoked",
                ));
            }
            match row.status {
                MessageStatus::Deleted => {
                    return Err(ServiceError::conflict(
                        "invalid_state",
                        "the message is already deleted",
                    ));
                }
                MessageStatus::Queued | MessageStatus::Failed => {
                    if self.store.withdraw(caller.account_id, id).await? {
                        return Ok(());
                    }
                    // It left in the meantime: revoke it through WhatsApp instead.
                }
                _ => {
                    let session = self.session_of(caller, row.session_id).await?;
                    if !self.engines.get(session.engine)?.capabilities().revoke {
                        return Err(Self::unsupported(&session, "revocations"));
                    }
                    return self
                        .queue_action(&row, JobAction::Revoke, Value::Null)
                        .await;
                }
            }
        }
        Err(ServiceError::conflict(
            "invalid_state",
            "the message is being sent right now; try again in a moment",
        ))
    }

    /// `POST /api/messages/{id}/edit`: new text for a sent text message, within WhatsApp's
    /// 15-minute window.
    pub async fn edit(
        &self,
        caller: &Caller,
        id: MessageId,
        text: String,
    ) -> Result<(), ServiceError> {
        let row = self.message(caller, id).await?;
        if row.direction != Direction::Out || row.kind != MessageKind::Text {
            return Err(ServiceError::conflict(
                "invalid_state",
                "only text messages this session sent can be edited",
            ));
        }
        let sent_at = match (row.status, row.sent_at) {
            (MessageStatus::Queued, _) | (_, None) => {
                return Err(ServiceError::conflict(
                    "invalid_state",
                    "the message has not been sent yet",
                ));
            }
            (s, _) if s.is_terminal() => {
                return Err(ServiceError::conflict(
                    "invalid_state",
                    format!("the message is {}", s.as_str()),
                ));
            }
            (_, Some(at)) => at,
        };
        if self.clock.now_millis() - sent_at > EDIT_WINDOW_MS {
            return Err(ServiceError::conflict(
                "edit_window_closed",
                "WhatsApp allows edits only within 15 minutes of sending",
            ));
        }
        let session = self.session_for_operation(caller, &row).await?;
        if !self.engines.get(session.engine)?.capabilities().edits {
            return Err(Self::unsupported(&session, "edits"));
        }
        self.queue_action(&row, JobAction::Edit, json!({ "text": text }))
            .await
    }

    /// `POST /api/messages/{id}/resend`: a failed message goes out again.
    pub async fn resend(&self, caller: &Caller, id: MessageId) -> Result<(), ServiceError> {
        let row = self.message(caller, id).await?;
        self.session_for_operation(caller, &row).await?;
        match self.store.requeue_failed(caller.account_id, id).await? {
            Some(row) => {
                let _ = self.dispatch.send(row.session_id);
                Ok(())
            }
            None => Err(ServiceError::conflict(
                "invalid_state",
                format!(
                    "only failed messages can be resent (this one is {})",
                    row.status.as_str()
                ),
            )),
        }
    }

    /// `POST /api/messages/read`: read receipts for received messages of one chat.
    pub async fn mark_read(
        &self,
        caller: &Caller,
        ids: Vec<MessageId>,
        chat: Jid,
    ) -> Result<(), ServiceError> {
        let rows = self.store.messages_by_ids(caller.account_id, &ids).await?;
        let mut session = None;
        for id in &ids {
            let row = rows
                .iter()
                .find(|r| {
                    r.id == *id && r.account_id == caller.account_id && caller.can_see(r.session_id)
                })
                .ok_or_else(|| {
                    ServiceError::invalid("message_ids", format!("{id} is not a message of yours"))
                })?;
            if row.direction != Direction::In {
                return Err(ServiceError::invalid(
                    "message_ids",
                    format!("{id} was sent, not received"),
                ));
            }
            if row.chat_jid != chat {
                return Err(ServiceError::invalid(
                    "chat_jid",
                    format!("{id} belongs to chat {}", row.chat_jid),
                ));
            }
            if *session.get_or_insert(row.session_id) != row.session_id {
                return Err(ServiceError::invalid(
                    "message_ids",
                    "all messages must belong to one session",
                ));
            }
        }
        let Some(session_id) = session else {
            return Err(ServiceError::invalid(
                "message_ids",
                "must name at least one message",
            ));
        };
        let session = self.session_of(caller, session_id).await?;
        if !self.engines.get(session.engine)?.capabilities().mark_read {
            return Err(Self::unsupported(&session, "read receipts"));
        }
        let job = OutboxJob::new(
            caller.account_id,
            session.id,
            chat,
            None,
            JobAction::MarkRead,
            json!({ "message_ids": ids }),
        );
        self.store.enqueue_job(&job).await?;
        let _ = self.dispatch.send(session.id);
        Ok(())
    }

    /// `POST /api/send-presence-update`: shown at once; presence is not queued.
    pub async fn presence(
        &self,
        caller: &Caller,
        choice: SessionChoice,
        to: Option<Jid>,
        presence: Presence,
    ) -> Result<(), ServiceError> {
        if matches!(choice, SessionChoice::Sandbox) {
            // The number's presence is the operator's, not any one account's.
            return Err(ServiceError::invalid(
                "session_id",
                "presence updates cannot go through the sandbox number",
            ));
        }
        let session = self.session(caller, choice).await?;
        if session.status != SessionStatus::Connected {
            return Err(ServiceError::conflict(
                "session_not_connected",
                "presence needs a connected session",
            ));
        }
        let engine = self.engines.get(session.engine)?;
        if !engine.capabilities().presence {
            return Err(Self::unsupported(&session, "presence updates"));
        }
        self.ownership.require_local(session.id).await?;
        engine
            .presence(session.id, to.as_ref(), presence)
            .await
            .map_err(|e| match e {
                EngineError::Unsupported(_) => Self::unsupported(&session, "presence updates"),
                other => other.into(),
            })
    }

    /// A page of a session's messages, newest first.
    pub async fn logs(
        &self,
        caller: &Caller,
        session: SessionId,
        direction: Option<Direction>,
        chat: Option<Jid>,
        before: Option<MessageId>,
        limit: i64,
    ) -> Result<MessagePage, ServiceError> {
        if !caller.can_see(session)
            || self
                .store
                .get_session(caller.account_id, session)
                .await?
                .is_none()
        {
            return Err(ServiceError::NotFound("session"));
        }
        let mut messages = self
            .store
            .list_messages(&MessageFilter {
                account_id: caller.account_id,
                session_id: session,
                direction,
                chat,
                before,
                limit,
            })
            .await?;
        let next_cursor = if messages.len() as i64 > limit {
            messages.truncate(limit as usize);
            messages.last().map(|m| m.id)
        } else {
            None
        };
        Ok(MessagePage {
            messages,
            next_cursor,
        })
    }

    async fn queue_action(
        &self,
        row: &MessageRow,
        action: JobAction,
        payload: Value,
    ) -> Result<(), ServiceError> {
        let job = OutboxJob::new(
            row.account_id,
            row.session_id,
            row.chat_jid.clone(),
            Some(row.id),
            action,
            payload,
        );
        self.store.enqueue_job(&job).await?;
        let _ = self.dispatch.send(row.session_id);
        Ok(())
    }
}
