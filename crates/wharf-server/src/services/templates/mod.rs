//! Message templates of a session (the Zernio Business API's `accountId` is the session).
//!
//! Cloud sessions: Meta's templates, through Graph; each one Wharf sees is mirrored in the
//! store, and the mirror's review status is kept current by the template status webhook, so
//! a send is checked without calling Graph. Web and emulator sessions: Wharf's own
//! templates, checked against Meta's rules and approved at once (or refused with the
//! reason); sending one renders it into the message the engine can carry.

use std::sync::Arc;

use serde_json::{Map, Value, json};
use wharf_core::{
    EngineError, EngineKind, SessionId, TemplateId,
    engine::Capabilities,
    message::{Content, TemplateComponentKind, TemplateParameter},
    time::Clock,
};
use wharf_engines::cloud::{CloudEngine, CloudError, TemplateQuery};
use wharf_store::{SessionRow, Store, StoreError, TemplateRow};

use super::Caller;
use crate::ServiceError;

mod rules;

pub use rules::{check_components, placeholders};
use rules::{check_language, check_name, component, render, texts};

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

/// Graph's answer about `what`, which must be a JSON object: anything else is a bad
/// gateway, never a panic.
fn graph_object(answer: Value, what: &str) -> Result<Map<String, Value>, ServiceError> {
    match answer {
        Value::Object(o) => Ok(o),
        other => Err(ServiceError::BadGateway(format!(
            "Graph answered {what} with {} instead of an object",
            kind_of(&other)
        ))),
    }
}

/// A JSON value's kind, for messages.
fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
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
        crate::log_fields::session(id);
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
            let answer = graph_object(answer, "the created template")?;
            let Some(id) = answer.get("id").and_then(Value::as_str) else {
                return Err(ServiceError::BadGateway(
                    "Graph answered the created template without its id".into(),
                ));
            };
            let mut g = body;
            g["id"] = json!(id);
            g["status"] = answer.get("status").cloned().unwrap_or(json!("PENDING"));
            if let Some(c) = answer.get("category").and_then(Value::as_str) {
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
            let mut g = graph_object(fresh, "the template")?;
            g.insert("id".into(), json!(current.id));
            return self.mirror(&session, &Value::Object(g)).await;
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
        let Content::Template { name, language, .. } = &content else {
            return Ok(content);
        };
        let t = self.approved(session, name, language).await?;
        prepare_approved(&t, session, capabilities, content)
    }
}

/// [`TemplateService::prepare`] with the approved template `t` already in hand (a broadcast
/// checks its template once per batch, then renders each recipient's message).
pub fn prepare_approved(
    t: &TemplateView,
    session: &SessionRow,
    capabilities: &Capabilities,
    content: Content,
) -> Result<Content, ServiceError> {
    let Content::Template {
        name, components, ..
    } = &content
    else {
        return Ok(content);
    };
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
