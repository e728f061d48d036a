//! Message templates of a session (the Zernio Business API's `accountId` is the session).
//!
//! Cloud sessions: Meta's templates, through Graph; each one Wharf sees is mirrored in the
//! store, and the mirror's review status is kept current by the template status webhook, so
//! a send is checked without calling Graph. Web and emulator sessions: Wharf's own
//! templates, checked against Meta's rules and approved at once (or refused with the
//! reason); sending one renders it into the message the engine can carry.

use std::{collections::BTreeMap, sync::Arc};

use serde_json::{Map, Value, json};
use wharf_core::{
    EngineError, EngineKind, SessionId, TemplateId,
    engine::Capabilities,
    message::{Content, MessageKind, ReplyButton, TemplateComponentKind, TemplateParameter},
    time::Clock,
};
use wharf_engines::cloud::{CloudEngine, CloudError, TemplateQuery};
use wharf_store::{SessionRow, Store, StoreError, TemplateRow};

use super::Caller;
use crate::ServiceError;

/// Meta's template categories.
pub const CATEGORIES: [&str; 3] = ["AUTHENTICATION", "MARKETING", "UTILITY"];

/// A template to create, as the request gave it.
#[derive(Debug, Clone, Default)]
pub struct NewTemplate {
    pub name: Option<String>,
    pub category: Option<String>,
    pub language: Option<String>,
    pub components: Option<Value>,
}

/// A template as the API shows it (Graph's fields).
#[derive(Debug, Clone, PartialEq)]
pub struct TemplateView {
    pub id: String,
    pub name: String,
    pub status: String,
    pub category: String,
    pub language: String,
    pub components: Value,
    pub reason: Option<String>,
}

impl From<&TemplateRow> for TemplateView {
    fn from(t: &TemplateRow) -> Self {
        Self {
            id: t.external_id.clone().unwrap_or_else(|| t.id.to_string()),
            name: t.name.clone(),
            status: t.status.clone(),
            category: t.category.clone(),
            language: t.language.clone(),
            components: t.components.clone(),
            reason: t.reason.clone(),
        }
    }
}

/// Which templates a listing shows (each `None` matches all).
#[derive(Debug, Clone, Default)]
pub struct TemplateFilter {
    /// Names containing this (as Graph's `name` filter).
    pub name: Option<String>,
    pub language: Option<String>,
    /// `APPROVED`, `PENDING`, `REJECTED`, … (any case).
    pub status: Option<String>,
}

impl TemplateFilter {
    fn matches(&self, t: &TemplateView) -> bool {
        self.name.as_deref().is_none_or(|n| t.name.contains(n))
            && self.language.as_deref().is_none_or(|l| t.language == l)
            && self
                .status
                .as_deref()
                .is_none_or(|s| t.status.eq_ignore_ascii_case(s))
    }
}

/// The templates service.
pub struct TemplateService {
    store: Store,
    cloud: Option<Arc<CloudEngine>>,
    clock: Clock,
}

fn invalid(field: &str, message: impl Into<String>) -> ServiceError {
    ServiceError::invalid(field, message)
}

fn cloud_error(e: CloudError) -> ServiceError {
    match e {
        CloudError::Graph(g) => ServiceError::Engine(match g.to_engine_error(0) {
            // A refused business call is the provider's answer, not a reason to retry.
            EngineError::RetryLater { reason, .. } | EngineError::Transient(reason)
                if g.http_status.is_some_and(|s| s < 500) && g.retry_after.is_none() =>
            {
                EngineError::Permanent(reason)
            }
            other => other,
        }),
        CloudError::Engine(e) => ServiceError::Engine(e),
    }
}

impl TemplateService {
    pub fn new(store: Store, cloud: Option<Arc<CloudEngine>>, clock: Clock) -> Self {
        Self {
            store,
            cloud,
            clock,
        }
    }

    /// The caller's session `id` (the "WhatsApp account"), not deleted.
    pub async fn session(
        &self,
        caller: &Caller,
        id: SessionId,
    ) -> Result<SessionRow, ServiceError> {
        if !caller.can_see(id) {
            return Err(ServiceError::NotFound("WhatsApp account"));
        }
        self.store
            .get_session(caller.account_id, id)
            .await?
            .filter(|s| !s.status.is_deleting())
            .ok_or(ServiceError::NotFound("WhatsApp account"))
    }

    fn engine(&self) -> Result<&Arc<CloudEngine>, ServiceError> {
        self.cloud
            .as_ref()
            .ok_or_else(|| ServiceError::Unavailable {
                reason_code: "engine_unavailable",
                message: "the cloud engine is not available on this server".into(),
            })
    }

    /// Mirrors one of Graph's templates; returns it as the API shows it.
    async fn mirror(&self, session: &SessionRow, g: &Value) -> Result<TemplateView, ServiceError> {
        // Meta dates its webhooks to the second: a review outcome of the same second as this
        // read must still win over it.
        let now = self.clock.now_millis() / 1000 * 1000;
        let row = TemplateRow {
            id: TemplateId::generate(),
            account_id: session.account_id,
            session_id: session.id,
            name: g["name"].as_str().unwrap_or_default().to_owned(),
            language: g["language"].as_str().unwrap_or_default().to_owned(),
            category: g["category"].as_str().unwrap_or_default().to_owned(),
            status: g["status"].as_str().unwrap_or("PENDING").to_owned(),
            reason: g["rejected_reason"]
                .as_str()
                .filter(|r| *r != "NONE")
                .map(str::to_owned),
            components: g.get("components").cloned().unwrap_or(json!([])),
            external_id: g["id"].as_str().map(str::to_owned),
            status_at: now,
            created_at: now,
            updated_at: now,
        };
        if !row.name.is_empty() && !row.language.is_empty() {
            self.store.upsert_mirrored_template(&row).await?;
        }
        Ok(TemplateView::from(&row))
    }

    /// Every template of the session whose name is `name` (all when `None`), from Graph.
    async fn graph_templates(
        &self,
        session: &SessionRow,
        name: Option<&str>,
    ) -> Result<Vec<TemplateView>, ServiceError> {
        let engine = self.engine()?;
        let mut query = TemplateQuery {
            limit: Some(100),
            name: name.map(str::to_owned),
            ..Default::default()
        };
        let mut out = Vec::new();
        let mut pages = 0;
        loop {
            let page = engine
                .list_templates(session.id, &query)
                .await
                .map_err(cloud_error)?;
            for g in &page.templates {
                if name.is_none_or(|n| g["name"].as_str() == Some(n)) {
                    out.push(self.mirror(session, g).await?);
                }
            }
            pages += 1;
            match page.after {
                // Meta caps a WABA's templates well below 100 pages of 100.
                Some(after) if pages < 100 => query.after = Some(after),
                _ => break,
            }
        }
        // What Graph no longer has (deleted in Meta's tools) is no longer sendable.
        let kept: Vec<(String, String)> = out
            .iter()
            .map(|t| (t.name.clone(), t.language.clone()))
            .collect();
        self.store
            .prune_mirrored_templates(session.account_id, session.id, name, &kept)
            .await?;
        Ok(out)
    }

    /// `GET /v1/whatsapp/templates`: the session's templates, those matching `filter`.
    pub async fn list(
        &self,
        caller: &Caller,
        session: SessionId,
        filter: &TemplateFilter,
    ) -> Result<Vec<TemplateView>, ServiceError> {
        let session = self.session(caller, session).await?;
        let all = if session.engine == EngineKind::Cloud {
            self.graph_templates(&session, None).await?
        } else {
            let rows = self.store.templates(caller.account_id, session.id).await?;
            rows.iter().map(TemplateView::from).collect()
        };
        Ok(all.into_iter().filter(|t| filter.matches(t)).collect())
    }

    /// `GET /v1/whatsapp/templates/{name}`: the template in `language`, or its first
    /// language.
    pub async fn get(
        &self,
        caller: &Caller,
        session: SessionId,
        name: &str,
        language: Option<&str>,
    ) -> Result<TemplateView, ServiceError> {
        let session = self.session(caller, session).await?;
        self.named(&session, name, language).await
    }

    /// The template `name` of the session in `language` (the first language when `None`).
    async fn named(
        &self,
        session: &SessionRow,
        name: &str,
        language: Option<&str>,
    ) -> Result<TemplateView, ServiceError> {
        let all = if session.engine == EngineKind::Cloud {
            self.graph_templates(session, Some(name)).await?
        } else {
            let rows = self
                .store
                .templates_named(session.account_id, session.id, name)
                .await?;
            rows.iter().map(TemplateView::from).collect()
        };
        all.into_iter()
            .find(|t| language.is_none_or(|l| t.language == l))
            .ok_or(ServiceError::NotFound("template"))
    }

    /// `POST /v1/whatsapp/templates`: creates a template (on Graph for cloud sessions, where
    /// it waits for Meta's review; approved at once elsewhere).
    pub async fn create(
        &self,
        caller: &Caller,
        session: SessionId,
        new: NewTemplate,
    ) -> Result<TemplateView, ServiceError> {
        let name = new
            .name
            .filter(|n| !n.is_empty())
            .ok_or_else(|| invalid("name", "is required"))?;
        check_name(&name)?;
        let category = new
            .category
            .filter(|c| !c.is_empty())
            .ok_or_else(|| invalid("category", "is required"))?;
        if !CATEGORIES.contains(&category.as_str()) {
            return Err(invalid(
                "category",
                "must be AUTHENTICATION, MARKETING or UTILITY",
            ));
        }
        let language = new
            .language
            .filter(|l| !l.is_empty())
            .ok_or_else(|| invalid("language", "is required"))?;
        check_language(&language)?;
        let components = new
            .components
            .ok_or_else(|| invalid("components", "is required"))?;
        let components = check_components(&components, "components")?;
        let session = self.session(caller, session).await?;
        let now = self.clock.now_millis();
        if session.engine == EngineKind::Cloud {
            let body = json!({"name": name, "language": language, "category": category,
                "components": components});
            let answer = self
                .engine()?
                .create_template(session.id, &body)
                .await
                .map_err(cloud_error)?;
            let mut g = body;
            g["id"] = answer["id"].clone();
            g["status"] = answer.get("status").cloned().unwrap_or(json!("PENDING"));
            if let Some(c) = answer["category"].as_str() {
                g["category"] = json!(c);
            }
            return self.mirror(&session, &g).await;
        }
        let row = TemplateRow {
            id: TemplateId::generate(),
            account_id: session.account_id,
            session_id: session.id,
            name,
            language,
            category,
            status: "APPROVED".into(),
            reason: None,
            components,
            external_id: None,
            status_at: now,
            created_at: now,
            updated_at: now,
        };
        match self.store.insert_template(&row).await {
            Ok(()) => Ok(TemplateView::from(&row)),
            Err(StoreError::Conflict(_)) => Err(ServiceError::invalid_with(
                "template_exists",
                "name",
                format!(
                    "a template {} in language {} already exists",
                    row.name, row.language
                ),
            )),
            Err(e) => Err(e.into()),
        }
    }

    /// `PATCH /v1/whatsapp/templates/{name}`: new components (of the template in
    /// `language`, or its first language).
    pub async fn update(
        &self,
        caller: &Caller,
        session: SessionId,
        name: &str,
        language: Option<&str>,
        components: Option<Value>,
    ) -> Result<TemplateView, ServiceError> {
        let components = components.ok_or_else(|| invalid("components", "is required"))?;
        let components = check_components(&components, "components")?;
        let session = self.session(caller, session).await?;
        if session.engine == EngineKind::Cloud {
            let current = self.named(&session, name, language).await?;
            let engine = self.engine()?;
            engine
                .edit_template(session.id, &current.id, &json!({"components": components}))
                .await
                .map_err(cloud_error)?;
            let fresh = engine
                .get_template(session.id, &current.id)
                .await
                .map_err(cloud_error)?;
            let mut g = fresh;
            g["id"] = json!(current.id);
            return self.mirror(&session, &g).await;
        }
        let mut row = self
            .store
            .templates_named(session.account_id, session.id, name)
            .await?
            .into_iter()
            .find(|t| language.is_none_or(|l| t.language == l))
            .ok_or(ServiceError::NotFound("template"))?;
        let now = self.clock.now_millis();
        row.components = components;
        row.status = "APPROVED".into();
        row.reason = None;
        row.status_at = now;
        row.updated_at = now;
        self.store.update_template(&row).await?;
        Ok(TemplateView::from(&row))
    }

    /// `DELETE /v1/whatsapp/templates/{name}`: the template in `language`, or every
    /// language of it.
    pub async fn delete(
        &self,
        caller: &Caller,
        session: SessionId,
        name: &str,
        language: Option<&str>,
    ) -> Result<(), ServiceError> {
        let session = self.session(caller, session).await?;
        if session.engine == EngineKind::Cloud {
            // One language: Meta deletes it by its id.
            let id = match language {
                Some(l) => Some(self.named(&session, name, Some(l)).await?.id),
                None => None,
            };
            self.engine()?
                .delete_template(session.id, name, id.as_deref())
                .await
                .map_err(|e| match e {
                    CloudError::Graph(g) if g.http_status == Some(404) => {
                        ServiceError::NotFound("template")
                    }
                    e => cloud_error(e),
                })?;
            self.store
                .delete_templates_named(session.account_id, session.id, name, language)
                .await?;
            return Ok(());
        }
        let n = self
            .store
            .delete_templates_named(session.account_id, session.id, name, language)
            .await?;
        if n == 0 {
            return Err(ServiceError::NotFound("template"));
        }
        Ok(())
    }

    /// The approved template `name` in `language` of `session`, or the 422 naming it.
    pub async fn approved(
        &self,
        session: &SessionRow,
        name: &str,
        language: &str,
    ) -> Result<TemplateView, ServiceError> {
        let mut found = self
            .store
            .templates_named(session.account_id, session.id, name)
            .await?
            .iter()
            .find(|t| t.language == language)
            .map(TemplateView::from);
        // A cloud template Wharf has not seen yet (made in Meta's tools): ask Graph once.
        if found.is_none() && session.engine == EngineKind::Cloud && self.cloud.is_some() {
            found = self
                .graph_templates(session, Some(name))
                .await?
                .into_iter()
                .find(|t| t.language == language);
        }
        let t = found.ok_or_else(|| {
            ServiceError::invalid_with(
                "template_not_found",
                "template.name",
                format!("this WhatsApp account has no template {name} in language {language}"),
            )
        })?;
        if t.status != "APPROVED" {
            let why = t
                .reason
                .as_deref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default();
            return Err(ServiceError::invalid_with(
                "template_not_approved",
                "template.name",
                format!(
                    "template {name} is {}{why}: only approved templates can be sent",
                    t.status
                ),
            ));
        }
        Ok(t)
    }

    /// The send path's check of a template message, before anything is queued: the
    /// template exists, is approved and its variables fit. On a cloud session the message
    /// stays a template; elsewhere it becomes the message it renders to.
    pub async fn prepare(
        &self,
        session: &SessionRow,
        capabilities: &Capabilities,
        content: Content,
    ) -> Result<Content, ServiceError> {
        let Content::Template {
            name,
            language,
            components,
        } = &content
        else {
            return Ok(content);
        };
        let t = self.approved(session, name, language).await?;
        let body = component(&t.components, "BODY");
        let body_text = body.and_then(|b| b["text"].as_str()).unwrap_or_default();
        let params = |kind: TemplateComponentKind| -> Vec<&TemplateParameter> {
            components
                .iter()
                .filter(|c| c.kind == kind)
                .flat_map(|c| c.parameters.iter())
                .collect()
        };
        let body_params = texts(&params(TemplateComponentKind::Body), "body")?;
        let wanted = placeholders(body_text).len();
        if body_params.len() < wanted {
            return Err(ServiceError::invalid_with(
                "template_variable_missing",
                &format!("template.variables.{}", body_params.len() + 1),
                format!(
                    "template {name} needs {wanted} body variables ({{{{1}}}} to {{{{{wanted}}}}}); variable {{{{{}}}}} is missing",
                    body_params.len() + 1
                ),
            ));
        }
        if body_params.len() > wanted {
            return Err(ServiceError::invalid_with(
                "template_variable_unexpected",
                "template.components",
                format!(
                    "template {name} takes {wanted} body variables; {} were given",
                    body_params.len()
                ),
            ));
        }
        if session.engine == EngineKind::Cloud {
            return Ok(content);
        }
        render(name, &t.components, components, &body_params, capabilities)
    }
}

/// The text a parameter stands for (media ones have none).
fn texts(params: &[&TemplateParameter], part: &str) -> Result<Vec<String>, ServiceError> {
    params
        .iter()
        .map(|p| match p {
            TemplateParameter::Text { text, .. } => Ok(text.clone()),
            TemplateParameter::Currency { currency, .. } => Ok(currency.fallback_value.clone()),
            TemplateParameter::DateTime { date_time, .. } => Ok(date_time.fallback_value.clone()),
            TemplateParameter::Payload { payload } => Ok(payload.clone()),
            TemplateParameter::CouponCode { coupon_code } => Ok(coupon_code.clone()),
            _ => Err(invalid(
                "template.components",
                format!("the {part} takes text parameters"),
            )),
        })
        .collect()
}

/// The template component of `kind` (`BODY`, `HEADER`, …).
fn component<'a>(components: &'a Value, kind: &str) -> Option<&'a Value> {
    components.as_array()?.iter().find(|c| {
        c["type"]
            .as_str()
            .is_some_and(|t| t.eq_ignore_ascii_case(kind))
    })
}

/// The `{{n}}` numbers of a text, in order of appearance.
pub fn placeholders(text: &str) -> Vec<usize> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        match after.find("}}") {
            Some(end) => {
                if let Ok(n) = after[..end].trim().parse::<usize>() {
                    out.push(n);
                }
                rest = &after[end + 2..];
            }
            None => break,
        }
    }
    out
}

fn fill(text: &str, values: &[String]) -> String {
    let mut out = text.to_owned();
    for (i, v) in values.iter().enumerate() {
        out = out.replace(&format!("{{{{{}}}}}", i + 1), v);
    }
    out
}

/// The message a template renders to on an engine without templates: text (header, body,
/// footer), a media message when the header is media, reply buttons for quick replies where
/// the engine has buttons, and every other button as a line of text.
fn render(
    name: &str,
    template: &Value,
    components: &[wharf_core::message::TemplateComponent],
    body_params: &[String],
    capabilities: &Capabilities,
) -> Result<Content, ServiceError> {
    let body = fill(
        component(template, "BODY")
            .and_then(|b| b["text"].as_str())
            .unwrap_or_default(),
        body_params,
    );
    let footer = component(template, "FOOTER")
        .and_then(|f| f["text"].as_str())
        .map(str::to_owned);
    let header_params: Vec<&TemplateParameter> = components
        .iter()
        .filter(|c| c.kind == TemplateComponentKind::Header)
        .flat_map(|c| c.parameters.iter())
        .collect();
    let mut header_text = None;
    let mut media = None;
    if let Some(h) = component(template, "HEADER") {
        let format = h["format"].as_str().unwrap_or("TEXT").to_ascii_uppercase();
        match format.as_str() {
            "TEXT" => {
                let text = h["text"].as_str().unwrap_or_default();
                let values = texts(&header_params, "header")?;
                let wanted = placeholders(text).len();
                if values.len() < wanted {
                    return Err(ServiceError::invalid_with(
                        "template_variable_missing",
                        "template.components",
                        format!("template {name}: the header's variable {{{{1}}}} is missing"),
                    ));
                }
                header_text = Some(fill(text, &values));
            }
            "IMAGE" | "VIDEO" | "DOCUMENT" => {
                let link = header_params
                    .iter()
                    .find_map(|p| match (p, format.as_str()) {
                        (TemplateParameter::Image { image }, "IMAGE") => Some(image.link.clone()),
                        (TemplateParameter::Video { video }, "VIDEO") => Some(video.link.clone()),
                        (TemplateParameter::Document { document }, "DOCUMENT") => {
                            Some(document.link.clone())
                        }
                        _ => None,
                    });
                let link = link.ok_or_else(|| {
                    ServiceError::invalid_with(
                        "template_variable_missing",
                        "template.components",
                        format!(
                            "template {name} has a {} header: give it as a header parameter",
                            format.to_ascii_lowercase()
                        ),
                    )
                })?;
                media = Some((
                    match format.as_str() {
                        "IMAGE" => MessageKind::Image,
                        "VIDEO" => MessageKind::Video,
                        _ => MessageKind::Document,
                    },
                    link,
                ));
            }
            _ => {}
        }
    }
    let mut replies = Vec::new();
    let mut lines = Vec::new();
    if let Some(buttons) = component(template, "BUTTONS").and_then(|b| b["buttons"].as_array()) {
        for (i, b) in buttons.iter().enumerate() {
            let label = b["text"].as_str().unwrap_or_default();
            let kind = b["type"].as_str().unwrap_or_default().to_ascii_uppercase();
            let param = components
                .iter()
                .find(|c| c.kind == TemplateComponentKind::Button && c.index == Some(i as u8))
                .map(|c| texts(&c.parameters.iter().collect::<Vec<_>>(), "button"))
                .transpose()?
                .unwrap_or_default();
            match kind.as_str() {
                "QUICK_REPLY" => replies.push(ReplyButton {
                    id: param.first().cloned().unwrap_or_else(|| label.to_owned()),
                    title: label.to_owned(),
                }),
                "URL" => {
                    let url = fill(b["url"].as_str().unwrap_or_default(), &param);
                    lines.push(format!("{label}: {url}"));
                }
                "PHONE_NUMBER" => lines.push(format!(
                    "{label}: {}",
                    b["phone_number"].as_str().unwrap_or_default()
                )),
                _ => lines.push(label.to_owned()),
            }
        }
    }
    let has_buttons = capabilities.kinds.contains(&MessageKind::Buttons);
    if media.is_none() && !replies.is_empty() && replies.len() <= 3 && has_buttons {
        let mut body = body;
        if !lines.is_empty() {
            body = format!("{body}\n\n{}", lines.join("\n"));
        }
        return Ok(Content::Buttons {
            body,
            header: header_text,
            footer,
            buttons: replies,
        });
    }
    lines.splice(0..0, replies.into_iter().map(|r| r.title));
    let mut parts: Vec<String> = Vec::new();
    if let Some(h) = header_text {
        parts.push(h);
    }
    parts.push(body);
    if let Some(f) = footer {
        parts.push(f);
    }
    if !lines.is_empty() {
        parts.push(lines.join("\n"));
    }
    let text = parts.join("\n\n");
    Ok(match media {
        Some((kind, url)) => Content::Media {
            media: kind,
            url,
            media_id: None,
            caption: Some(text),
            file_name: None,
            mime_type: None,
            view_once: false,
        },
        None => Content::Text { text },
    })
}

fn check_name(name: &str) -> Result<(), ServiceError> {
    let ok = name.len() <= 512
        && name.as_bytes()[0].is_ascii_lowercase()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if !ok {
        return Err(invalid(
            "name",
            "must match ^[a-z][a-z0-9_]*$ (lowercase letters, digits and underscores, starting with a letter; at most 512)",
        ));
    }
    Ok(())
}

fn check_language(language: &str) -> Result<(), ServiceError> {
    let (lang, region) = match language.split_once('_') {
        Some((l, r)) => (l, Some(r)),
        None => (language, None),
    };
    let ok = (2..=3).contains(&lang.len())
        && lang.bytes().all(|b| b.is_ascii_lowercase())
        && region.is_none_or(|r| {
            (2..=4).contains(&r.len()) && r.bytes().all(|b| b.is_ascii_alphanumeric())
        });
    if !ok {
        return Err(invalid(
            "language",
            "must be a language code such as en, en_US or pt_BR",
        ));
    }
    Ok(())
}

fn text_field<'a>(
    c: &'a Map<String, Value>,
    key: &str,
    field: &str,
    max: usize,
) -> Result<&'a str, ServiceError> {
    let t = c
        .get(key)
        .and_then(Value::as_str)
        .filter(|t| !t.trim().is_empty())
        .ok_or_else(|| invalid(field, "is required"))?;
    if t.chars().count() > max {
        return Err(invalid(field, format!("must be at most {max} characters")));
    }
    Ok(t)
}

/// Checks components against Meta's rules; answers them with their `type` (and header
/// `format`, button `type`) in Meta's upper case.
pub fn check_components(components: &Value, field: &str) -> Result<Value, ServiceError> {
    let list = components
        .as_array()
        .ok_or_else(|| invalid(field, "must be an array"))?;
    if list.is_empty() {
        return Err(invalid(field, "must hold at least one component"));
    }
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut out = Vec::new();
    for (i, c) in list.iter().enumerate() {
        let at = format!("{field}[{i}]");
        let mut c = c
            .as_object()
            .cloned()
            .ok_or_else(|| invalid(&at, "must be an object"))?;
        let kind = c
            .get("type")
            .and_then(Value::as_str)
            .map(str::to_ascii_uppercase)
            .ok_or_else(|| invalid(&format!("{at}.type"), "is required"))?;
        if seen.insert(kind.clone(), i).is_some() {
            return Err(invalid(
                &format!("{at}.type"),
                format!("a template has at most one {kind} component"),
            ));
        }
        match kind.as_str() {
            "BODY" => {
                let text = text_field(&c, "text", &format!("{at}.text"), 1024)?;
                check_variables(text, &format!("{at}.text"), usize::MAX)?;
            }
            "HEADER" => {
                let format = c
                    .get("format")
                    .and_then(Value::as_str)
                    .unwrap_or("TEXT")
                    .to_ascii_uppercase();
                match format.as_str() {
                    "TEXT" => {
                        let text = text_field(&c, "text", &format!("{at}.text"), 60)?;
                        check_variables(text, &format!("{at}.text"), 1)?;
                    }
                    "IMAGE" | "VIDEO" | "DOCUMENT" | "LOCATION" => {}
                    _ => {
                        return Err(invalid(
                            &format!("{at}.format"),
                            "must be TEXT, IMAGE, VIDEO, DOCUMENT or LOCATION",
                        ));
                    }
                }
                c.insert("format".into(), json!(format));
            }
            "FOOTER" => {
                let text = text_field(&c, "text", &format!("{at}.text"), 60)?;
                if !placeholders(text).is_empty() || text.contains("{{") {
                    return Err(invalid(
                        &format!("{at}.text"),
                        "a footer cannot hold variables",
                    ));
                }
            }
            "BUTTONS" => {
                let buttons = check_buttons(c.get("buttons"), &format!("{at}.buttons"))?;
                c.insert("buttons".into(), buttons);
            }
            _ => {
                return Err(invalid(
                    &format!("{at}.type"),
                    "must be HEADER, BODY, FOOTER or BUTTONS",
                ));
            }
        }
        c.insert("type".into(), json!(kind));
        out.push(Value::Object(c));
    }
    if !seen.contains_key("BODY") {
        return Err(invalid(field, "a template needs a BODY component"));
    }
    Ok(Value::Array(out))
}

/// `{{1}}` to `{{n}}`, each number once and none skipped, at most `max` of them.
fn check_variables(text: &str, field: &str, max: usize) -> Result<(), ServiceError> {
    let mut found = placeholders(text);
    if text.matches("{{").count() != found.len() {
        return Err(invalid(field, "variables are written {{1}}, {{2}}, …"));
    }
    if found.len() > max {
        return Err(invalid(field, format!("at most {max} variable(s)")));
    }
    found.sort_unstable();
    for (i, n) in found.iter().enumerate() {
        if *n != i + 1 {
            return Err(invalid(
                field,
                "variables must be numbered {{1}}, {{2}}, … in sequence, each once",
            ));
        }
    }
    Ok(())
}

fn check_buttons(buttons: Option<&Value>, field: &str) -> Result<Value, ServiceError> {
    let list = buttons
        .and_then(Value::as_array)
        .ok_or_else(|| invalid(field, "is required (an array of buttons)"))?;
    if list.is_empty() || list.len() > 10 {
        return Err(invalid(field, "must hold 1 to 10 buttons"));
    }
    let (mut urls, mut phones) = (0, 0);
    let mut out = Vec::new();
    for (i, b) in list.iter().enumerate() {
        let at = format!("{field}[{i}]");
        let mut b = b
            .as_object()
            .cloned()
            .ok_or_else(|| invalid(&at, "must be an object"))?;
        let kind = b
            .get("type")
            .and_then(Value::as_str)
            .map(str::to_ascii_uppercase)
            .ok_or_else(|| invalid(&format!("{at}.type"), "is required"))?;
        text_field(&b, "text", &format!("{at}.text"), 25)?;
        match kind.as_str() {
            "QUICK_REPLY" | "COPY_CODE" | "OTP" => {}
            "URL" => {
                urls += 1;
                let url = text_field(&b, "url", &format!("{at}.url"), 2000)?;
                if !(url.starts_with("https://") || url.starts_with("http://")) {
                    return Err(invalid(&format!("{at}.url"), "must be an http(s) URL"));
                }
                check_variables(url, &format!("{at}.url"), 1)?;
                if url.contains("{{") && !url.ends_with("}}") {
                    return Err(invalid(
                        &format!("{at}.url"),
                        "a URL's variable must be at its end",
                    ));
                }
            }
            "PHONE_NUMBER" => {
                phones += 1;
                text_field(&b, "phone_number", &format!("{at}.phone_number"), 20)?;
            }
            _ => {
                return Err(invalid(
                    &format!("{at}.type"),
                    "must be QUICK_REPLY, URL, PHONE_NUMBER or COPY_CODE",
                ));
            }
        }
        b.insert("type".into(), json!(kind));
        out.push(Value::Object(b));
    }
    if urls > 2 {
        return Err(invalid(field, "at most 2 URL buttons"));
    }
    if phones > 1 {
        return Err(invalid(field, "at most 1 PHONE_NUMBER button"));
    }
    Ok(Value::Array(out))
}
