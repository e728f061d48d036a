//! What comes back from the engines for sent messages: the dispatcher's outcomes (sent,
//! failed, retried, deferred, actions done) and receipts, each batch in one transaction with
//! its events, never moving a status backwards.

use super::*;

/// Whether `job` is a send whose job is its queued message alone (SQLite; see
/// [`super::sends_in_outbox`]), told to wait with the message's `send_after`.
fn queued_is_job(backend: Backend, job: &OutboxJob) -> bool {
    !super::sends_in_outbox(backend) && job.action == JobAction::Send && job.message_id.is_some()
}

/// The `available_at` an action told to wait until `$1` gets: never before 1 ms after its
/// `created_at`, so it is in `outbox_waiting` and holds back its chat while it waits,
/// whatever the clock did since the job was created.
fn wait_until(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => "MAX($1, created_at + 1)",
        Backend::Postgres => "GREATEST($1, created_at + 1)",
    }
}

impl Store {
    /// Applies the dispatcher's outcomes in one transaction, with their events.
    pub async fn record_outcomes(&self, outcomes: &[JobOutcome]) -> Result<()> {
        self.record_outcomes_fenced(None, outcomes).await
    }

    /// Applies outcomes as [`Store::record_outcomes`] does, only while `fence` holds (the
    /// instance still owns the session's lease at its generation): otherwise writes nothing
    /// and fails with [`StoreError::Fenced`].
    pub async fn record_outcomes_fenced(
        &self,
        fence: Option<&crate::Fence>,
        outcomes: &[JobOutcome],
    ) -> Result<()> {
        if outcomes.is_empty() {
            return Ok(());
        }
        let mut tx = self.write.begin().await?;
        let mut events = Vec::new();
        let slow = self.record_sends(&mut tx, outcomes, &mut events).await?;
        for outcome in slow {
            match outcome {
                JobOutcome::Defer { job, available_at } if queued_is_job(self.backend(), job) => {
                    let Some(id) = job.message_id else { continue };
                    // Only while it is queued: a send withdrawn meanwhile stays withdrawn. Any
                    // `send_after` puts it in `messages_waiting`, where it holds back its chat.
                    sqlx::query(
                        "UPDATE messages SET send_after = $1 WHERE id = $2 AND status = 'queued'",
                    )
                    .bind(*available_at)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                }
                JobOutcome::Defer { job, available_at } => {
                    let sql = format!(
                        "UPDATE outbox SET available_at = {} WHERE id = $2",
                        wait_until(self.backend())
                    );
                    sqlx::query(sqlx::AssertSqlSafe(sql))
                        .bind(*available_at)
                        .bind(job.id)
                        .execute(&mut *tx)
                        .await?;
                }
                JobOutcome::Retry {
                    job, available_at, ..
                } if queued_is_job(self.backend(), job) => {
                    let Some(id) = job.message_id else { continue };
                    sqlx::query(
                        "UPDATE messages SET send_after = $1, send_attempts = send_attempts + 1, \
                         attempts = attempts + 1 WHERE id = $2 AND status = 'queued'",
                    )
                    .bind(*available_at)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                }
                JobOutcome::Retry {
                    job,
                    available_at,
                    error,
                } => {
                    let sql = format!(
                        "UPDATE outbox SET available_at = {}, attempts = attempts + 1, \
                         last_error = $2 WHERE id = $3",
                        wait_until(self.backend())
                    );
                    sqlx::query(sqlx::AssertSqlSafe(sql))
                        .bind(*available_at)
                        .bind(crate::plain_str(error))
                        .bind(job.id)
                        .execute(&mut *tx)
                        .await?;
                    if let Some(id) = job.message_id
                        && job.action == JobAction::Send
                    {
                        sqlx::query("UPDATE messages SET attempts = attempts + 1 WHERE id = $1")
                            .bind(id)
                            .execute(&mut *tx)
                            .await?;
                    }
                }
                JobOutcome::Sent {
                    job,
                    provider_id,
                    at,
                    ..
                } => {
                    end_job(&mut tx, job).await?;
                    let Some(id) = job.message_id else { continue };
                    let Some(mut row) = self
                        .lock_message(&mut tx, "id", id.to_string(), None)
                        .await?
                    else {
                        continue;
                    };
                    row.attempts += 1;
                    row.provider_msg_id = Some(provider_id.clone());
                    if row.status == MessageStatus::Deleted && row.sent_at.is_none() {
                        // Withdrawn while it was being sent: it reached WhatsApp after all,
                        // so it is revoked there.
                        row.sent_at = Some(*at);
                        let revoke = OutboxJob::new(
                            row.account_id,
                            row.session_id,
                            row.chat_jid.clone(),
                            Some(row.id),
                            JobAction::Revoke,
                            Value::Null,
                        );
                        insert_job(&mut tx, &revoke).await?;
                    } else if row.advance(MessageStatus::Sent, *at) {
                        events.push(row.event(EventType::MessageSent));
                    }
                    write_message(&mut tx, &row).await?;
                }
                JobOutcome::Failed { job, reason, at } => {
                    end_job(&mut tx, job).await?;
                    let Some(id) = job.message_id else { continue };
                    if job.action != JobAction::Send {
                        // A failed action leaves the message as it was; the reason is logged.
                        tracing::warn!(job = %job.id, message = %id, %reason, "message action failed");
                        continue;
                    }
                    let Some(mut row) = self
                        .lock_message(&mut tx, "id", id.to_string(), None)
                        .await?
                    else {
                        continue;
                    };
                    // Only a message still queued fails: one a receipt moved on went out
                    // (an attempt that timed out had reached WhatsApp), and a withdrawn or
                    // failed one stays as it is. Statuses never move back.
                    if row.status != MessageStatus::Queued {
                        continue;
                    }
                    row.attempts += 1;
                    row.status = MessageStatus::Failed;
                    row.failure_reason = Some(reason.clone());
                    row.failed_at = Some(*at);
                    row.updated_at = now_millis();
                    write_message(&mut tx, &row).await?;
                    events.push(row.event(EventType::MessageFailed));
                }
                JobOutcome::Done { job, at } => {
                    end_job(&mut tx, job).await?;
                    self.apply_action(&mut tx, job, *at, &mut events).await?;
                }
            }
        }
        // The CRM's sent count and time of each contact a message went out to.
        let sent: Vec<_> = outcomes
            .iter()
            .filter_map(|o| match o {
                JobOutcome::Sent { job, at, .. }
                    if job.action == JobAction::Send && job.message_id.is_some() =>
                {
                    let phone = job.chat_jid.phone()?;
                    Some((job.account_id, job.session_id, phone.e164().to_owned(), *at))
                }
                _ => None,
            })
            .collect();
        crate::contacts::touch_outbound(&mut tx, &sent).await?;
        append_events(&mut tx, &events).await?;
        if let Some(fence) = fence {
            // Last, just before the commit: the lease row stays locked for share only while
            // the transaction commits, so the owner's renewals never wait behind a batch.
            crate::leases::check_fence(&mut tx, self.backend(), fence).await?;
        }
        tx.commit().await?;
        if !events.is_empty() {
            self.events_appended();
        }
        Ok(())
    }

    /// Records the sends of queued messages in bulk: their outbox rows deleted (PostgreSQL),
    /// the messages marked sent (on SQLite that alone ends their jobs), in a handful of
    /// statements. Returns the outcomes left for one-by-one handling
    /// (everything else, and sends whose message was no longer queued).
    async fn record_sends<'a>(
        &self,
        tx: &mut AnyConnection,
        outcomes: &'a [JobOutcome],
        events: &mut Vec<Event>,
    ) -> Result<Vec<&'a JobOutcome>> {
        let mut rest = Vec::new();
        let mut sends = Vec::new();
        for o in outcomes {
            match o {
                JobOutcome::Sent {
                    job,
                    message: Some(m),
                    provider_id,
                    at,
                } if m.status == MessageStatus::Queued => sends.push((job, m, provider_id, *at)),
                other => rest.push(other),
            }
        }
        let now = now_millis();
        for chunk in sends.chunks(100) {
            if super::sends_in_outbox(self.backend()) {
                let ids = Params::on(tx).list(chunk.len());
                let sql =
                    format!("DELETE FROM outbox WHERE action = 'send' AND message_id IN ({ids})");
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).persistent(false);
                for (_, m, ..) in chunk {
                    q = q.bind(m.id);
                }
                q.execute(&mut *tx).await?;
            }
            let values = Params::on(tx).rows(chunk.len(), 3);
            let sql = format!(
                "UPDATE messages SET status = 'sent', provider_msg_id = v.column2, \
                 sent_at = CAST(v.column3 AS BIGINT), attempts = attempts + 1, updated_at = {now} \
                 FROM (VALUES {values}) AS v WHERE messages.id = v.column1 AND messages.status = 'queued' \
                 RETURNING messages.id"
            );
            let mut q = sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(sql)).persistent(false);
            for (_, m, provider_id, at) in chunk {
                q = q.bind(m.id).bind(*provider_id).bind(at.to_string());
            }
            let updated: std::collections::HashSet<String> =
                q.fetch_all(&mut *tx).await?.into_iter().collect();
            for (job, m, provider_id, at) in chunk {
                if updated.contains(&m.id.to_string()) {
                    let mut row = (**m).clone();
                    row.status = MessageStatus::Sent;
                    row.provider_msg_id = Some((*provider_id).clone());
                    row.sent_at = Some(*at);
                    row.attempts += 1;
                    row.updated_at = now;
                    events.push(row.event(EventType::MessageSent));
                } else {
                    // Changed since it was read (say, a receipt came first): the careful way.
                    let original = outcomes
                        .iter()
                        .find(|o| matches!(o, JobOutcome::Sent { job: j, .. } if j.id == job.id));
                    if let Some(o) = original {
                        rest.push(o);
                    }
                }
            }
        }
        Ok(rest)
    }

    async fn apply_action(
        &self,
        tx: &mut AnyConnection,
        job: &OutboxJob,
        at: i64,
        events: &mut Vec<Event>,
    ) -> Result<()> {
        let ids: Vec<String> = match job.action {
            JobAction::MarkRead => job.payload["message_ids"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default(),
            _ => job
                .message_id
                .map(|m| vec![m.to_string()])
                .unwrap_or_default(),
        };
        for id in ids {
            let Some(mut row) = self
                .lock_message(tx, "id", id, Some(job.session_id))
                .await?
            else {
                continue;
            };
            let event = match job.action {
                JobAction::Edit if row.status != MessageStatus::Deleted => {
                    if let (Content::Text { text }, Some(new)) =
                        (&mut row.content, job.payload["text"].as_str())
                    {
                        *text = new.to_owned();
                    }
                    row.edited_at = Some(at);
                    row.updated_at = now_millis();
                    Some(EventType::MessageEdited)
                }
                JobAction::Revoke if row.status != MessageStatus::Deleted => {
                    row.status = MessageStatus::Deleted;
                    row.deleted_at = Some(at);
                    row.updated_at = now_millis();
                    Some(EventType::MessageDeleted)
                }
                JobAction::MarkRead => row
                    .advance(MessageStatus::Read, at)
                    .then_some(EventType::MessageRead),
                _ => None,
            };
            if let Some(kind) = event {
                write_message(tx, &row).await?;
                events.push(row.event(kind));
            }
        }
        Ok(())
    }

    /// Applies receipts for messages `session` sent: forward only, duplicates and late
    /// arrivals merged without a second event. Unknown ids are ignored. The batch reads its
    /// messages with one query per 200 ids and writes the changed ones with one statement.
    pub async fn apply_receipts(
        &self,
        session: SessionId,
        receipts: &[(ProviderId, ReceiptKind, i64)],
    ) -> Result<()> {
        if receipts.is_empty() {
            return Ok(());
        }
        let mut tx = self.write.begin().await?;
        let ids: Vec<&ProviderId> = {
            let mut seen = std::collections::HashSet::new();
            receipts
                .iter()
                .map(|(p, ..)| p)
                .filter(|p| seen.insert(*p))
                .collect()
        };
        let mut rows = self
            .outgoing_by_provider_ids(&mut tx, session, &ids)
            .await?;
        let mut events = Vec::new();
        let mut changed: Vec<ProviderId> = Vec::new();
        for (provider_id, kind, at) in receipts {
            let Some(row) = rows.get_mut(provider_id) else {
                continue;
            };
            let before = (
                row.status,
                row.sent_at,
                row.delivered_at,
                row.read_at,
                row.played_at,
            );
            let status = kind.status();
            if row.advance(status, *at) {
                events.push(
                    row.event(EventType::for_status(status).unwrap_or(EventType::MessageDelivered)),
                );
            }
            if before
                != (
                    row.status,
                    row.sent_at,
                    row.delivered_at,
                    row.read_at,
                    row.played_at,
                )
                && !changed.contains(provider_id)
            {
                changed.push(provider_id.clone());
            }
        }
        let now = now_millis();
        for chunk in changed.chunks(100) {
            let values = Params::on(&tx).rows(chunk.len(), 6);
            let sql = format!(
                "UPDATE messages SET status = v.column2, sent_at = CAST(v.column3 AS BIGINT), \
                 delivered_at = CAST(v.column4 AS BIGINT), read_at = CAST(v.column5 AS BIGINT), \
                 played_at = CAST(v.column6 AS BIGINT), updated_at = {now} \
                 FROM (VALUES {values}) AS v WHERE messages.id = v.column1"
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).persistent(false);
            for pid in chunk {
                let m = &rows[pid];
                let text = |t: Option<i64>| t.map(|t| t.to_string());
                q = q
                    .bind(m.id)
                    .bind(m.status.as_str())
                    .bind(text(m.sent_at))
                    .bind(text(m.delivered_at))
                    .bind(text(m.read_at))
                    .bind(text(m.played_at));
            }
            q.execute(&mut *tx).await?;
        }
        append_events(&mut tx, &events).await?;
        tx.commit().await?;
        if !events.is_empty() {
            self.events_appended();
        }
        Ok(())
    }
}
