//! Business operations of a cloud session's number and account: message templates, the
//! business profile, phone numbers, registration and media. Each answers Graph's own data;
//! a Graph error comes back as [`CloudError::Graph`] with its code, and an auth error also
//! disconnects the session (as for sends).

use serde_json::{Value, json};
use wharf_core::{EngineError, SessionId};

use super::{CloudEngine, GraphError, Line, graph::Multipart};

/// A failed business operation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CloudError {
    /// Graph refused or failed the call.
    #[error(transparent)]
    Graph(GraphError),
    /// The session could not be used (no credentials, shutting down, …).
    #[error(transparent)]
    Engine(EngineError),
}

impl From<EngineError> for CloudError {
    fn from(e: EngineError) -> Self {
        Self::Engine(e)
    }
}

/// Which templates to list.
#[derive(Debug, Clone, Default)]
pub struct TemplateQuery {
    /// Page size (Graph's default when `None`).
    pub limit: Option<u32>,
    /// The `after` cursor of the previous page.
    pub after: Option<String>,
    /// Only these statuses (`APPROVED`, `PENDING`, …).
    pub status: Option<String>,
    /// Only names containing this.
    pub name: Option<String>,
}

/// A page of templates.
#[derive(Debug, Clone, PartialEq)]
pub struct TemplatePage {
    /// The templates, as Graph shows them (`name`, `status`, `language`, `category`,
    /// `components`, `id`).
    pub templates: Vec<Value>,
    /// The cursor of the next page; `None` on the last one.
    pub after: Option<String>,
}

/// How a verification code is delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeMethod {
    Sms,
    Voice,
}

/// Where an uploaded media file can be downloaded (the URL lives about five minutes and needs
/// the session's token).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaInfo {
    pub id: String,
    pub url: String,
    pub mime_type: String,
    pub sha256: String,
    pub file_size: u64,
}

const TEMPLATE_FIELDS: &str = "name,status,language,category,components";

impl CloudEngine {
    /// Runs `call` with the session's line; Graph errors become [`CloudError::Graph`] (and
    /// disconnect the session when they are auth errors).
    async fn business<T, F>(&self, session: SessionId, call: F) -> Result<T, CloudError>
    where
        F: AsyncFnOnce(&Line) -> Result<T, GraphError>,
    {
        let line = self.line(session).await?;
        match call(&line).await {
            Ok(v) => Ok(v),
            Err(e) => {
                self.failed(session, &e, 0).await;
                Err(CloudError::Graph(e))
            }
        }
    }

    /// `GET /{waba}/message_templates`: a page of the account's templates.
    pub async fn list_templates(
        &self,
        session: SessionId,
        query: &TemplateQuery,
    ) -> Result<TemplatePage, CloudError> {
        self.business(session, async |l: &Line| {
            let mut q = vec![("fields", TEMPLATE_FIELDS.to_owned())];
            if let Some(n) = query.limit {
                q.push(("limit", n.to_string()));
            }
            if let Some(a) = &query.after {
                q.push(("after", a.clone()));
            }
            if let Some(s) = &query.status {
                q.push(("status", s.clone()));
            }
            if let Some(n) = &query.name {
                q.push(("name", n.clone()));
            }
            let page = l
                .graph
                .get(&format!("{}/message_templates", l.credentials.waba_id), &q)
                .await?;
            let after = page["paging"]["next"]
                .as_str()
                .and(page["paging"]["cursors"]["after"].as_str())
                .map(str::to_owned);
            Ok(TemplatePage {
                templates: page["data"].as_array().cloned().unwrap_or_default(),
                after,
            })
        })
        .await
    }

    /// `POST /{waba}/message_templates`: submits a template for review. `template` is
    /// Graph's body (`name`, `language`, `category`, `components`, …); the answer holds
    /// `id`, `status` and `category`.
    pub async fn create_template(
        &self,
        session: SessionId,
        template: &Value,
    ) -> Result<Value, CloudError> {
        self.business(session, async |l: &Line| {
            l.graph
                .post(
                    &format!("{}/message_templates", l.credentials.waba_id),
                    template,
                )
                .await
        })
        .await
    }

    /// `GET /{template-id}`.
    pub async fn get_template(
        &self,
        session: SessionId,
        template_id: &str,
    ) -> Result<Value, CloudError> {
        self.business(session, async |l: &Line| {
            l.graph
                .get(template_id, &[("fields", format!("{TEMPLATE_FIELDS},id"))])
                .await
        })
        .await
    }

    /// `POST /{template-id}` with new `components` and/or `category`.
    pub async fn edit_template(
        &self,
        session: SessionId,
        template_id: &str,
        change: &Value,
    ) -> Result<(), CloudError> {
        self.business(session, async |l: &Line| {
            l.graph.post(template_id, change).await.map(|_| ())
        })
        .await
    }

    /// `DELETE /{waba}/message_templates?name=…[&hsm_id=…]`: every language of a template, or
    /// the one with that id.
    pub async fn delete_template(
        &self,
        session: SessionId,
        name: &str,
        template_id: Option<&str>,
    ) -> Result<(), CloudError> {
        self.business(session, async |l: &Line| {
            let mut q = vec![("name", name.to_owned())];
            if let Some(id) = template_id {
                q.push(("hsm_id", id.to_owned()));
            }
            l.graph
                .delete(&format!("{}/message_templates", l.credentials.waba_id), &q)
                .await
                .map(|_| ())
        })
        .await
    }

    /// `GET /{pnid}/whatsapp_business_profile`: the number's business profile.
    pub async fn business_profile(&self, session: SessionId) -> Result<Value, CloudError> {
        self.business(session, async |l: &Line| {
            let answer = l
                .graph
                .get(
                    &format!(
                        "{}/whatsapp_business_profile",
                        l.credentials.phone_number_id
                    ),
                    &[(
                        "fields",
                        "about,address,description,email,profile_picture_url,websites,vertical"
                            .to_owned(),
                    )],
                )
                .await?;
            Ok(answer["data"][0].clone())
        })
        .await
    }

    /// `POST /{pnid}/whatsapp_business_profile` with the fields to change (`about`,
    /// `address`, `description`, `email`, `websites`, `vertical`, `profile_picture_handle`).
    pub async fn update_business_profile(
        &self,
        session: SessionId,
        fields: &Value,
    ) -> Result<(), CloudError> {
        let mut body = fields.clone();
        body["messaging_product"] = json!("whatsapp");
        self.business(session, async |l: &Line| {
            l.graph
                .post(
                    &format!(
                        "{}/whatsapp_business_profile",
                        l.credentials.phone_number_id
                    ),
                    &body,
                )
                .await
                .map(|_| ())
        })
        .await
    }

    /// `GET /{waba}/phone_numbers`: the account's numbers (id, display number, verified
    /// name, verification status, quality rating, throughput, …).
    pub async fn phone_numbers(&self, session: SessionId) -> Result<Vec<Value>, CloudError> {
        self.business(session, async |l: &Line| {
            let answer = l
                .graph
                .get(&format!("{}/phone_numbers", l.credentials.waba_id), &[])
                .await?;
            Ok(answer["data"].as_array().cloned().unwrap_or_default())
        })
        .await
    }

    /// `POST /{pnid}/request_code`: sends a verification code by SMS or voice.
    pub async fn request_code(
        &self,
        session: SessionId,
        method: CodeMethod,
        language: &str,
    ) -> Result<(), CloudError> {
        self.request_code_for(session, None, method, language).await
    }

    /// `POST /{number}/request_code` with the session's credentials: on `number` (a Graph
    /// phone number id the session's token may manage, such as a pre-verified number), or
    /// on the session's own number when `None`.
    pub async fn request_code_for(
        &self,
        session: SessionId,
        number: Option<&str>,
        method: CodeMethod,
        language: &str,
    ) -> Result<(), CloudError> {
        let method = match method {
            CodeMethod::Sms => "SMS",
            CodeMethod::Voice => "VOICE",
        };
        self.business(session, async |l: &Line| {
            let number = number.unwrap_or(&l.credentials.phone_number_id);
            l.graph
                .post_query(
                    &format!("{number}/request_code"),
                    &[
                        ("code_method", method.to_owned()),
                        ("language", language.to_owned()),
                    ],
                )
                .await
                .map(|_| ())
        })
        .await
    }

    /// `POST /{pnid}/verify_code`.
    pub async fn verify_code(&self, session: SessionId, code: &str) -> Result<(), CloudError> {
        self.verify_code_for(session, None, code).await
    }

    /// `POST /{number}/verify_code` with the session's credentials (see
    /// [`Self::request_code_for`]).
    pub async fn verify_code_for(
        &self,
        session: SessionId,
        number: Option<&str>,
        code: &str,
    ) -> Result<(), CloudError> {
        self.business(session, async |l: &Line| {
            let number = number.unwrap_or(&l.credentials.phone_number_id);
            l.graph
                .post_query(
                    &format!("{number}/verify_code"),
                    &[("code", code.to_owned())],
                )
                .await
                .map(|_| ())
        })
        .await
    }

    /// `POST /{pnid}/register` with the two-step verification PIN.
    pub async fn register(&self, session: SessionId, pin: &str) -> Result<(), CloudError> {
        let body = json!({ "messaging_product": "whatsapp", "pin": pin });
        self.business(session, async |l: &Line| {
            l.graph
                .post(
                    &format!("{}/register", l.credentials.phone_number_id),
                    &body,
                )
                .await
                .map(|_| ())
        })
        .await
    }

    /// `POST /{pnid}/deregister`.
    pub async fn deregister(&self, session: SessionId) -> Result<(), CloudError> {
        let body = json!({ "messaging_product": "whatsapp" });
        self.business(session, async |l: &Line| {
            l.graph
                .post(
                    &format!("{}/deregister", l.credentials.phone_number_id),
                    &body,
                )
                .await
                .map(|_| ())
        })
        .await
    }

    /// `POST /{pnid}/media`: uploads a file; returns its media id (usable in sends for 30
    /// days).
    pub async fn upload_media(
        &self,
        session: SessionId,
        bytes: Vec<u8>,
        mime_type: &str,
        file_name: &str,
    ) -> Result<String, CloudError> {
        let form = Multipart {
            fields: vec![
                ("messaging_product", "whatsapp".into()),
                ("type", mime_type.to_owned()),
            ],
            file_field: "file",
            file_name: file_name.to_owned(),
            file_type: mime_type.to_owned(),
            file: bytes,
        };
        self.business(session, async |l: &Line| {
            let answer = l
                .graph
                .post_multipart(&format!("{}/media", l.credentials.phone_number_id), &form)
                .await?;
            answer["id"]
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| GraphError {
                    http_status: Some(200),
                    code: None,
                    subcode: None,
                    message: format!("Graph answered an upload without a media id: {answer}"),
                    details: None,
                    retry_after: None,
                })
        })
        .await
    }

    /// A media file by id: `GET /{media-id}` for its URL, then the URL with the token (Graph's
    /// URLs live a few minutes, so each download asks anew). Answers the bytes and the type.
    pub async fn download_media(
        &self,
        session: SessionId,
        media_id: &str,
    ) -> Result<(Vec<u8>, String), CloudError> {
        self.business(session, async |l: &Line| {
            let m = l
                .graph
                .get(
                    media_id,
                    &[("phone_number_id", l.credentials.phone_number_id.clone())],
                )
                .await?;
            let url = m["url"].as_str().unwrap_or_default();
            if url.is_empty() {
                return Err(GraphError {
                    http_status: Some(200),
                    code: None,
                    subcode: None,
                    message: format!("Graph gave media {media_id} no URL: {m}"),
                    details: None,
                    retry_after: None,
                });
            }
            let (bytes, served) = l.graph.download(url).await?;
            let mime = m["mime_type"]
                .as_str()
                .filter(|t| !t.is_empty())
                .map(str::to_owned)
                .or(served)
                .unwrap_or_else(|| "application/octet-stream".to_owned());
            Ok((bytes, mime))
        })
        .await
    }

    /// `GET /{media-id}`: where to download a media file.
    pub async fn media_url(
        &self,
        session: SessionId,
        media_id: &str,
    ) -> Result<MediaInfo, CloudError> {
        self.business(session, async |l: &Line| {
            let m = l
                .graph
                .get(
                    media_id,
                    &[("phone_number_id", l.credentials.phone_number_id.clone())],
                )
                .await?;
            let text = |k: &str| m[k].as_str().unwrap_or_default().to_owned();
            Ok(MediaInfo {
                id: text("id"),
                url: text("url"),
                mime_type: text("mime_type"),
                sha256: text("sha256"),
                file_size: m["file_size"].as_u64().unwrap_or_default(),
            })
        })
        .await
    }
}
