//! The sending side of broadcasts, run by the broadcast worker: scheduled broadcasts start
//! when due (by the injected clock; at once after a restart that missed the time), and each
//! sending broadcast's recipients become messages one batch at a time. A batch's messages,
//! the recipients' state and the cursor commit together (`Store::commit_broadcast_batch`),
//! so a crash anywhere resumes at the cursor: nobody messaged twice, nobody skipped. The
//! outbox holds at most a window of a broadcast's messages (counted from its counters), so
//! the dispatcher's pace sets the speed and memory stays flat.

use std::collections::BTreeMap;

use wharf_core::{
    Jid, Phone,
    message::{Content, TemplateComponent, TemplateComponentKind, TemplateParameter},
};
use wharf_store::{BatchItem, BatchOutcome, BroadcastRow, RecipientRow, Transition};

use super::{
    Caller,
    broadcasts::{BroadcastService, WINDOW_BATCHES},
    templates::placeholders,
};
use crate::ServiceError;

/// What a round of the worker did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    /// Something was committed: more may be ready at once.
    pub progressed: bool,
    /// Broadcasts have recipients left but their outbox windows are full: the dispatcher
    /// drains them soon.
    pub waiting: bool,
    /// Some broadcast has recipients left to commit.
    pub sending: bool,
}

/// The template of a broadcast: name, language and the components every recipient shares.
pub(crate) fn template_of(b: &BroadcastRow) -> (String, String, Vec<TemplateComponent>) {
    let t = &b.template;
    (
        t["name"].as_str().unwrap_or_default().to_owned(),
        t["language"].as_str().unwrap_or_default().to_owned(),
        serde_json::from_value(t["components"].clone()).unwrap_or_default(),
    )
}

/// The components of one recipient's message: the shared ones, with the body's parameters
/// from the recipient's variables (`"1"`, `"2"`, …) when it has any or none are shared.
fn components_for(
    shared: &[TemplateComponent],
    wanted: usize,
    variables: &BTreeMap<String, String>,
    template: &str,
) -> Result<Vec<TemplateComponent>, String> {
    let shared_body = shared.iter().any(|c| c.kind == TemplateComponentKind::Body);
    let mut components = shared.to_vec();
    if variables.is_empty() && shared_body {
        return Ok(components);
    }
    let mut params = Vec::with_capacity(wanted);
    for n in 1..=wanted {
        match variables.get(&n.to_string()) {
            Some(v) => params.push(TemplateParameter::Text {
                text: v.clone(),
                parameter_name: None,
            }),
            None => {
                return Err(format!(
                    "missing variable {{{{{n}}}}} of template {template}"
                ));
            }
        }
    }
    components.retain(|c| c.kind != TemplateComponentKind::Body);
    if !params.is_empty() {
        components.push(TemplateComponent {
            kind: TemplateComponentKind::Body,
            sub_type: None,
            index: None,
            parameters: params,
        });
    }
    Ok(components)
}

fn variables_of(r: &RecipientRow) -> BTreeMap<String, String> {
    r.variables
        .as_ref()
        .and_then(|v| v.as_object())
        .map(|o| {
            o.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                .collect()
        })
        .unwrap_or_default()
}

impl BroadcastService {
    /// One round of the worker: starts the scheduled broadcasts that are due, then commits
    /// one batch of each sending broadcast.
    pub async fn step(&self) -> Result<Step, ServiceError> {
        let now = self.clock.now_millis();
        let mut did = false;
        let mut sending = false;
        for id in self.store.due_broadcasts(now, 100).await? {
            if let Some(Transition::Done(b)) = self.store.start_broadcast(None, id, now).await? {
                tracing::info!(broadcast_id = %b.id, session_id = %b.session_id, account_id = %b.account_id, "scheduled broadcast started");
                did = true;
            }
        }
        for b in self.store.broadcasts_to_process(100).await? {
            sending = true;
            match self.batch(&b).await {
                Ok(progressed) => did |= progressed,
                Err(e) => {
                    tracing::error!(broadcast_id = %b.id, session_id = %b.session_id, account_id = %b.account_id, error = %e, "broadcast batch failed")
                }
            }
        }
        // Counters moved by sends and receipts join their broadcasts; finished ones end.
        if self.store.settle_broadcasts(100).await? > 0 {
            did = true;
        }
        Ok(Step {
            progressed: did,
            waiting: sending && !did,
            sending,
        })
    }

    /// Ends `b` as failed for `reason`.
    async fn give_up(&self, b: &BroadcastRow, reason: &str) -> Result<bool, ServiceError> {
        tracing::warn!(broadcast_id = %b.id, session_id = %b.session_id, account_id = %b.account_id, %reason, "broadcast failed");
        self.store.fail_broadcast(b.id, reason).await?;
        Ok(true)
    }

    /// Commits the next batch of `b`; `false` when its outbox window is full (or another
    /// worker took the batch).
    async fn batch(&self, b: &BroadcastRow) -> Result<bool, ServiceError> {
        let caller = Caller {
            account_id: b.account_id,
            session_id: None,
            token: None,
            auth_epoch: None,
        };
        let session = match self.templates.session(&caller, b.session_id).await {
            Ok(s) => s,
            Err(ServiceError::NotFound(_)) => {
                return self.give_up(b, "the WhatsApp account was deleted").await;
            }
            Err(e) => return Err(e),
        };
        let batch = self.settings.batch.max(1);
        let window = batch * WINDOW_BATCHES;
        if b.waiting_messages() >= window {
            return Ok(false);
        }
        let (name, language, shared) = template_of(b);
        let template = match self.templates.approved(&session, &name, &language).await {
            Ok(t) => t,
            Err(e @ ServiceError::Invalid { .. }) => return self.give_up(b, &e.to_string()).await,
            Err(e) => return Err(e),
        };
        let body = template
            .components
            .as_array()
            .and_then(|cs| {
                cs.iter().find(|c| {
                    c["type"]
                        .as_str()
                        .is_some_and(|t| t.eq_ignore_ascii_case("BODY"))
                })
            })
            .and_then(|c| c["text"].as_str())
            .unwrap_or_default();
        let wanted = placeholders(body).len();
        let rows = self
            .store
            .recipients_after(b.id, b.cursor_seq, batch)
            .await?;
        let upto = if (rows.len() as i64) < batch {
            b.next_seq
        } else {
            rows.last().map_or(b.next_seq, |r| r.seq)
        };
        let phones: Vec<String> = rows.iter().map(|r| r.phone.clone()).collect();
        let opted_out = self.crm.opted_out(&caller, session.id, &phones).await?;
        let mut items: Vec<BatchItem> = Vec::with_capacity(rows.len());
        let mut to_send: Vec<(usize, Jid, Content)> = Vec::new();
        for r in &rows {
            let outcome = if opted_out.contains(&r.phone) {
                Some(BatchOutcome::Skipped(
                    "skipped: this contact opted out of template messages".into(),
                ))
            } else {
                match (
                    Phone::parse(&r.phone),
                    components_for(&shared, wanted, &variables_of(r), &name),
                ) {
                    (Err(e), _) => Some(BatchOutcome::Failed(format!("invalid phone number: {e}"))),
                    (_, Err(why)) => Some(BatchOutcome::Failed(why)),
                    (Ok(phone), Ok(components)) => {
                        to_send.push((
                            items.len(),
                            Jid::from_phone(&phone),
                            Content::Template {
                                name: name.clone(),
                                language: language.clone(),
                                components,
                            },
                        ));
                        None
                    }
                }
            };
            items.push(BatchItem {
                seq: r.seq,
                // Filled below for the recipients that get a message.
                outcome: outcome.unwrap_or(BatchOutcome::Failed(String::new())),
            });
        }
        let (slots, sends): (Vec<usize>, Vec<(Jid, Content)>) = to_send
            .into_iter()
            .map(|(i, to, content)| (i, (to, content)))
            .unzip();
        let decided = match self.messages.broadcast_messages(&session, &template, sends) {
            Ok(d) => d,
            Err(e @ ServiceError::Invalid { .. }) => return self.give_up(b, &e.to_string()).await,
            Err(e) => return Err(e),
        };
        for (slot, decided) in slots.into_iter().zip(decided) {
            items[slot].outcome = match decided {
                Ok(queued) => BatchOutcome::Queued(Box::new(queued)),
                Err(why) => BatchOutcome::Failed(why),
            };
        }
        let committed = self.store.commit_broadcast_batch(b, upto, &items).await?;
        if committed {
            self.messages.wake(session.id);
        }
        Ok(committed)
    }
}
