//! The Contacts folder of the Wapio API (`/api/on-whatsapp/…`, `/api/contacts…`). Wapio's
//! paths name no session: a session key acts on its own session, a personal access token
//! names one with the `session_id` query parameter.

use axum::{
    Json,
    extract::{Path, State},
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};
use wharf_core::{Jid, Phone, SessionId, jid::JidServer, time::rfc3339};

use super::send::parse_recipient;
use crate::{
    http::{
        AppState,
        error::{ApiError, ErrorBody},
        extract::{ApiJson, QueryPairs},
    },
    services::{Caller, social::Contact},
};

type ApiResult<T> = Result<T, ApiError>;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(check_on_whatsapp))
        .routes(routes!(list_contacts, upsert_contact))
        .routes(routes!(get_contact))
        .routes(routes!(get_contact_picture))
        .routes(routes!(block_contact))
        .routes(routes!(unblock_contact))
}

/// The session a request acts on: `session_id` in the query (required with a personal access
/// token; a session key acts on its own session).
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct SessionQuery {
    /// The session (`sess_…`); required with a personal access token.
    pub session_id: Option<String>,
}

/// The `session_id` query parameter, refusing other parameters than `extra`.
pub(super) fn session_param(query: &QueryPairs, extra: &[&str]) -> ApiResult<Option<SessionId>> {
    let mut known = vec!["session_id"];
    known.extend_from_slice(extra);
    query.only(&known)?;
    query
        .get("session_id")
        .map(|raw| {
            raw.parse::<SessionId>()
                .map_err(|_| ApiError::invalid("session_id", "must be a session id (sess_…)"))
        })
        .transpose()
}

/// A phone number from the path.
pub(super) fn phone_param(raw: &str) -> ApiResult<Phone> {
    Phone::parse(raw).map_err(|e| ApiError::invalid("phone", e.to_string()))
}

/// A person's JID (or phone number) from the body, as `field`.
pub(super) fn person(field: &str, raw: &str) -> ApiResult<Jid> {
    let jid = parse_recipient(field, raw)?;
    match jid.server() {
        JidServer::User | JidServer::Lid => Ok(jid),
        _ => Err(ApiError::invalid(
            field,
            "must be a person's phone number or JID",
        )),
    }
}

/// A contact of the session.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactView {
    /// Its phone JID (`…@s.whatsapp.net`), or its LID when WhatsApp shows only that.
    pub jid: String,
    /// E.164, when known.
    pub phone: Option<String>,
    /// Its LID (`…@lid`), when known.
    pub lid: Option<String>,
    /// The name a user saved, else the phone's address book's.
    pub name: Option<String>,
    /// The name the contact set for themselves.
    pub push_name: Option<String>,
    /// A user saved a name for it (`PUT /api/contacts`).
    pub saved: bool,
    /// It is in the phone's address book.
    pub in_address_book: bool,
    /// The session blocked it.
    pub blocked: bool,
    /// When it last wrote to the session.
    pub last_message_at: Option<String>,
}

impl From<&Contact> for ContactView {
    fn from(c: &Contact) -> Self {
        Self {
            jid: c.jid.to_string(),
            phone: c.phone.as_ref().map(|p| p.e164().to_owned()),
            lid: c.lid.as_ref().map(ToString::to_string),
            name: c.name.clone(),
            push_name: c.push_name.clone(),
            saved: c.saved,
            in_address_book: c.in_address_book,
            blocked: c.blocked,
            last_message_at: c.last_message_at.map(rfc3339),
        }
    }
}

/// A page of contacts.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactListView {
    pub data: Vec<ContactView>,
    /// Pass as `cursor` for the next page; `null` on the last.
    pub next_cursor: Option<String>,
}

/// Whether a number is on WhatsApp.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OnWhatsappView {
    pub exists: bool,
    /// Its JID, when it exists.
    pub jid: Option<String>,
    /// Its LID, when known.
    pub lid: Option<String>,
}

/// A profile picture.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PictureView {
    pub jid: String,
    pub url: String,
}

/// `PUT /api/contacts`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpsertContactBody {
    /// The contact's phone number.
    pub phone: String,
    /// The name to save.
    pub name: String,
}

/// GET /api/on-whatsapp/{phone} — whether a number is on WhatsApp (answers are reused for
/// a minute).
#[utoipa::path(get, path = "/api/on-whatsapp/{phone}", tag = "contacts",
    params(("phone" = String, Path), SessionQuery),
    responses((status = 200, body = OnWhatsappView), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "The session is not connected."),
        (status = 422, body = ErrorBody, description = "Invalid phone or session, or `unsupported_by_engine`.")))]
async fn check_on_whatsapp(
    State(app): State<AppState>,
    caller: Caller,
    Path(phone): Path<String>,
    query: QueryPairs,
) -> ApiResult<Json<OnWhatsappView>> {
    let session = session_param(&query, &[])?;
    let phone = phone_param(&phone)?;
    let r = app
        .services
        .social
        .on_whatsapp(&caller, session, phone)
        .await?;
    Ok(Json(OnWhatsappView {
        exists: r.exists,
        jid: r.jid.map(|j| j.to_string()),
        lid: r.lid.map(|j| j.to_string()),
    }))
}

/// GET /api/contacts — the session's contacts: its address book, the names saved here and
/// everyone who wrote to it, in JID order; `search` matches names and numbers.
#[utoipa::path(get, path = "/api/contacts", tag = "contacts",
    params(SessionQuery,
        ("search" = Option<String>, Query, description = "Part of a name or number."),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page."),
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 100, description = "1 to 100, default 50.")),
    responses((status = 200, body = ContactListView), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn list_contacts(
    State(app): State<AppState>,
    caller: Caller,
    query: QueryPairs,
) -> ApiResult<Json<ContactListView>> {
    let session = session_param(&query, &["search", "cursor", "limit"])?;
    let limit = query.limit()?;
    let page = app
        .services
        .social
        .contacts(
            &caller,
            session,
            query.get("search"),
            query.get("cursor"),
            usize::try_from(limit).unwrap_or(50),
        )
        .await?;
    Ok(Json(ContactListView {
        data: page.contacts.iter().map(ContactView::from).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// PUT /api/contacts — saves a name for a contact of the session.
#[utoipa::path(put, path = "/api/contacts", tag = "contacts", params(SessionQuery),
    request_body = UpsertContactBody,
    responses((status = 200, body = ContactView), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn upsert_contact(
    State(app): State<AppState>,
    caller: Caller,
    query: QueryPairs,
    ApiJson(body): ApiJson<UpsertContactBody>,
) -> ApiResult<Json<ContactView>> {
    let session = session_param(&query, &[])?;
    let phone = phone_param(&body.phone)?;
    let contact = app
        .services
        .social
        .save_contact(&caller, session, &phone, &body.name)
        .await?;
    Ok(Json(ContactView::from(&contact)))
}

/// GET /api/contacts/{phone} — one contact (404 when the session knows nothing of it).
#[utoipa::path(get, path = "/api/contacts/{phone}", tag = "contacts",
    params(("phone" = String, Path), SessionQuery),
    responses((status = 200, body = ContactView), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn get_contact(
    State(app): State<AppState>,
    caller: Caller,
    Path(phone): Path<String>,
    query: QueryPairs,
) -> ApiResult<Json<ContactView>> {
    let session = session_param(&query, &[])?;
    let phone = phone_param(&phone)?;
    let contact = app
        .services
        .social
        .contact(&caller, session, &phone)
        .await?;
    Ok(Json(ContactView::from(&contact)))
}

/// GET /api/contacts/{jid}/picture — a contact's profile picture URL (a JID or phone
/// number); 404 when it has none or hides it from the session.
#[utoipa::path(get, path = "/api/contacts/{jid}/picture", tag = "contacts",
    params(("jid" = String, Path), SessionQuery),
    responses((status = 200, body = PictureView), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn get_contact_picture(
    State(app): State<AppState>,
    caller: Caller,
    Path(jid): Path<String>,
    query: QueryPairs,
) -> ApiResult<Json<PictureView>> {
    let session = session_param(&query, &[])?;
    let jid = person("jid", &jid)?;
    let url = app.services.social.picture(&caller, session, &jid).await?;
    Ok(Json(PictureView {
        jid: jid.to_string(),
        url,
    }))
}

async fn set_blocked(
    app: AppState,
    caller: Caller,
    phone: String,
    query: QueryPairs,
    blocked: bool,
) -> ApiResult<Json<ContactView>> {
    let session = session_param(&query, &[])?;
    let phone = phone_param(&phone)?;
    let contact = app
        .services
        .social
        .block(&caller, session, &phone, blocked)
        .await?;
    Ok(Json(ContactView::from(&contact)))
}

/// POST /api/contacts/{phone}/block — blocks the contact on WhatsApp.
#[utoipa::path(post, path = "/api/contacts/{phone}/block", tag = "contacts",
    params(("phone" = String, Path), SessionQuery),
    responses((status = 200, body = ContactView), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn block_contact(
    State(app): State<AppState>,
    caller: Caller,
    Path(phone): Path<String>,
    query: QueryPairs,
) -> ApiResult<Json<ContactView>> {
    set_blocked(app, caller, phone, query, true).await
}

/// POST /api/contacts/{phone}/unblock — unblocks the contact.
#[utoipa::path(post, path = "/api/contacts/{phone}/unblock", tag = "contacts",
    params(("phone" = String, Path), SessionQuery),
    responses((status = 200, body = ContactView), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn unblock_contact(
    State(app): State<AppState>,
    caller: Caller,
    Path(phone): Path<String>,
    query: QueryPairs,
) -> ApiResult<Json<ContactView>> {
    set_blocked(app, caller, phone, query, false).await
}
