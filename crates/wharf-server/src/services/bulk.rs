//! Bulk template sends (`POST /v1/whatsapp/bulk`): one approved template to up to 100
//! recipients, each with its own variables. Every recipient becomes one durable message
//! through the ordinary send path; a bad phone or a missing variable fails that recipient
//! alone. An idempotency key covers the whole call: each recipient's send is recorded under
//! a key derived from it, so a retried call answers the same message ids and sends nothing
//! twice.

use std::{collections::BTreeMap, sync::Arc};

use wharf_core::{
    Jid, Phone, SessionId,
    message::{Content, TemplateComponent, TemplateComponentKind, TemplateParameter},
};

use super::{
    Caller, CrmService, MessageService, TemplateService,
    messages::{SendRequest, SessionChoice},
    templates::placeholders,
};
use crate::ServiceError;

/// Most recipients of one call (the seed's `maxItems`).
pub const MAX_RECIPIENTS: usize = 100;

/// One recipient of a bulk send.
#[derive(Debug, Clone, Default)]
pub struct BulkRecipient {
    pub phone: String,
    /// Body variables by number (`"1"`, `"2"`, …).
    pub variables: BTreeMap<String, String>,
}

/// A bulk send, parsed.
#[derive(Debug, Clone)]
pub struct BulkRequest {
    pub session: SessionId,
    pub recipients: Vec<BulkRecipient>,
    pub template: String,
    pub language: String,
    /// Parameters shared by every recipient (header media, buttons, a default body).
    pub components: Vec<TemplateComponent>,
}

/// What became of one recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BulkResult {
    pub phone: String,
    pub message_id: Option<String>,
    pub error: Option<String>,
}

/// The bulk service.
pub struct BulkService {
    messages: Arc<MessageService>,
    templates: Arc<TemplateService>,
    crm: Arc<CrmService>,
}

/// A recipient's number in E.164, as the CRM keys contacts.
fn to_phone(raw: &str) -> Option<String> {
    Phone::parse(raw).ok().map(|p| p.e164().to_string())
}

/// A recipient's error when its send failed for another reason than its input; a server
/// fault is not described (it is logged).
fn not_queued(e: &ServiceError) -> String {
    match e {
        ServiceError::Internal(_) => {
            "could not be queued because of a server error; send to this recipient again".into()
        }
        other => format!("could not be queued: {other}"),
    }
}

impl BulkService {
    pub fn new(
        messages: Arc<MessageService>,
        templates: Arc<TemplateService>,
        crm: Arc<CrmService>,
    ) -> Self {
        Self {
            messages,
            templates,
            crm,
        }
    }

    /// Checks the account and the template, then queues one message per recipient.
    /// `idempotency` is the request's key and its whole body.
    pub async fn send(
        &self,
        caller: &Caller,
        req: BulkRequest,
        idempotency: Option<(String, Vec<u8>)>,
    ) -> Result<Vec<BulkResult>, ServiceError> {
        if req.recipients.is_empty() {
            return Err(ServiceError::invalid(
                "recipients",
                "must hold at least one recipient",
            ));
        }
        if req.recipients.len() > MAX_RECIPIENTS {
            return Err(ServiceError::invalid(
                "recipients",
                format!("at most {MAX_RECIPIENTS} recipients per request"),
            ));
        }
        let session = self.templates.session(caller, req.session).await?;
        let template = self
            .templates
            .approved(&session, &req.template, &req.language)
            .await?;
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
            .and_then(|b| b["text"].as_str())
            .unwrap_or_default();
        let wanted = placeholders(body).len();
        let shared_body = req
            .components
            .iter()
            .any(|c| c.kind == TemplateComponentKind::Body);
        // Contacts of the CRM who opted out are not sent template campaigns.
        let phones: Vec<String> = req
            .recipients
            .iter()
            .filter_map(|r| to_phone(&r.phone))
            .collect();
        let opted_out = self.crm.opted_out(caller, session.id, &phones).await?;
        let mut results = Vec::with_capacity(req.recipients.len());
        // Once a recipient's message is committed, the call answers per recipient whatever
        // happens next: an error then would hide what was queued, and a retry without an
        // idempotency key would send it again.
        let mut queued = false;
        for (i, r) in req.recipients.iter().enumerate() {
            let fail = |error: String| BulkResult {
                phone: r.phone.clone(),
                message_id: None,
                error: Some(error),
            };
            let to = match Phone::parse(&r.phone) {
                Ok(p) => Jid::from_phone(&p),
                Err(e) => {
                    results.push(fail(format!("invalid phone number: {e}")));
                    continue;
                }
            };
            if opted_out.contains(to_phone(&r.phone).as_deref().unwrap_or_default()) {
                results.push(fail(
                    "skipped: this contact opted out of template messages".to_string(),
                ));
                continue;
            }
            let mut components = req.components.clone();
            if !r.variables.is_empty() || !shared_body {
                let mut params = Vec::with_capacity(wanted);
                let mut missing = None;
                for n in 1..=wanted {
                    match r.variables.get(&n.to_string()) {
                        Some(v) => params.push(TemplateParameter::Text {
                            text: v.clone(),
                            parameter_name: None,
                        }),
                        None => {
                            missing = Some(n);
                            break;
                        }
                    }
                }
                if let Some(n) = missing {
                    results.push(fail(format!(
                        "missing variable {{{{{n}}}}} of template {}",
                        req.template
                    )));
                    continue;
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
            }
            let send = SendRequest {
                session: SessionChoice::Named(session.id),
                to,
                content: Content::Template {
                    name: req.template.clone(),
                    language: req.language.clone(),
                    components,
                },
                quoted: None,
            };
            // Each recipient's own key: a control character no header can carry keeps it
            // apart from any key a client sends.
            let key = idempotency
                .as_ref()
                .map(|(key, body)| (format!("bulk\u{1f}{i}\u{1f}{key}"), body.clone()));
            match self.messages.send(caller, send, key).await {
                Ok(answer) => {
                    queued = true;
                    results.push(BulkResult {
                        phone: r.phone.clone(),
                        message_id: Some(answer.message_id.to_string()),
                        error: None,
                    })
                }
                Err(ServiceError::Invalid { message, .. }) => results.push(fail(message)),
                // Nothing queued yet: the call fails whole, and can be retried as it is.
                Err(e) if !queued => return Err(e),
                Err(e) => {
                    tracing::warn!(recipient = i, error = %e, "a bulk recipient could not be queued");
                    results.push(fail(not_queued(&e)));
                }
            }
        }
        Ok(results)
    }
}
