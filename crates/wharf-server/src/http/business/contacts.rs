//! Contacts: `GET/POST /v1/whatsapp/contacts`, `GET/PUT/DELETE
//! /v1/whatsapp/contacts/{contactId}`, `POST /v1/whatsapp/contacts/import` and
//! `POST/DELETE /v1/whatsapp/contacts/bulk`.

use std::collections::BTreeMap;

use axum::{
    Json,
    extract::{Path, RawQuery, State},
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use wharf_core::time::rfc3339;
use wharf_store::ContactRow;

use super::{
    super::{
        AppState,
        extract::{DialectJson, double_option},
        zernio::{ZJson, ZResult, ZernioError, ZernioErrorBody},
    },
    MessageAnswer, query,
};
use crate::{
    ServiceError,
    services::{
        Caller,
        crm::{ContactInput, ContactPatch, ImportInput, ImportOutcome, ListInput},
    },
};

/// The routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_contacts, create_contact))
        .routes(routes!(import_contacts))
        .routes(routes!(bulk_update_contacts, bulk_delete_contacts))
        .routes(routes!(get_contact, update_contact, delete_contact))
}

/// A contact.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ContactView {
    pub id: String,
    /// E.164 with `+`.
    pub phone: String,
    /// The WhatsApp id: the phone's digits.
    pub wa_id: String,
    pub name: String,
    pub email: Option<String>,
    pub company: Option<String>,
    pub tags: Vec<String>,
    pub groups: Vec<String>,
    pub is_opted_in: bool,
    pub opt_in_date: Option<String>,
    pub opt_out_date: Option<String>,
    pub is_blocked: bool,
    pub last_message_sent_at: Option<String>,
    pub last_message_received_at: Option<String>,
    pub messages_sent_count: i64,
    pub messages_received_count: i64,
    #[schema(value_type = Object)]
    pub custom_fields: BTreeMap<String, String>,
    pub notes: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl From<&ContactRow> for ContactView {
    fn from(c: &ContactRow) -> Self {
        Self {
            id: c.id.to_string(),
            phone: c.phone.clone(),
            wa_id: c.phone.trim_start_matches('+').to_owned(),
            name: c.name.clone(),
            email: c.email.clone(),
            company: c.company.clone(),
            tags: c.tags.clone(),
            groups: c.groups.clone(),
            is_opted_in: c.is_opted_in,
            opt_in_date: c.opt_in_at.map(rfc3339),
            opt_out_date: c.opt_out_at.map(rfc3339),
            is_blocked: c.is_blocked,
            last_message_sent_at: c.last_sent_at.map(rfc3339),
            last_message_received_at: c.last_received_at.map(rfc3339),
            messages_sent_count: c.sent_count,
            messages_received_count: c.received_count,
            custom_fields: c.custom_fields.clone(),
            notes: c.notes.clone(),
            created_at: rfc3339(c.created_at),
            updated_at: rfc3339(c.updated_at),
        }
    }
}

/// `{success, contact}`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ContactAnswer {
    pub success: bool,
    pub contact: ContactView,
}

/// The filter values one can pick.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ContactFilters {
    pub tags: Vec<String>,
    pub groups: Vec<String>,
}

/// Paging of the list.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Pagination {
    pub total: i64,
    pub limit: i64,
    pub skip: i64,
    pub has_more: bool,
}

/// `GET` answer.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ContactList {
    pub success: bool,
    pub contacts: Vec<ContactView>,
    pub filters: ContactFilters,
    pub pagination: Pagination,
}

/// `POST` body (and one row of an import, without `accountId`).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateContactBody {
    pub account_id: Option<String>,
    /// E.164, e.g. `+1234567890`; unique per account.
    pub phone: Option<String>,
    pub name: Option<String>,
    pub email: Option<String>,
    pub company: Option<String>,
    pub tags: Option<Vec<String>>,
    pub groups: Option<Vec<String>>,
    /// Default `true`.
    pub is_opted_in: Option<bool>,
    pub custom_fields: Option<BTreeMap<String, String>>,
    pub notes: Option<String>,
}

impl CreateContactBody {
    fn input(self) -> ContactInput {
        ContactInput {
            phone: self.phone,
            name: self.name,
            email: self.email,
            company: self.company,
            tags: self.tags,
            groups: self.groups,
            is_opted_in: self.is_opted_in,
            custom_fields: self.custom_fields,
            notes: self.notes,
        }
    }
}

/// `PUT` body: only the given fields change; `customFields` merge (`null` removes one).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpdateContactBody {
    pub name: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub email: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub company: Option<Option<String>>,
    /// Replaces the tags.
    pub tags: Option<Vec<String>>,
    /// Replaces the groups.
    pub groups: Option<Vec<String>>,
    pub is_opted_in: Option<bool>,
    pub is_blocked: Option<bool>,
    #[schema(value_type = Option<Object>)]
    pub custom_fields: Option<BTreeMap<String, Option<String>>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub notes: Option<Option<String>>,
}

/// `POST /contacts/import` body.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImportBody {
    pub account_id: Option<String>,
    /// At most 1,000.
    pub contacts: Option<Vec<CreateContactBody>>,
    pub default_tags: Option<Vec<String>>,
    pub default_groups: Option<Vec<String>>,
    /// Default `true`.
    pub skip_duplicates: Option<bool>,
}

/// Counts of an import.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ImportSummary {
    pub total: i64,
    pub created: i64,
    pub skipped: i64,
    pub failed: i64,
}

/// One row's outcome.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImportRowResult {
    pub phone: String,
    pub name: String,
    pub success: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contact_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `POST /contacts/import` answer.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ImportAnswer {
    pub success: bool,
    pub summary: ImportSummary,
    pub results: Vec<ImportRowResult>,
}

/// `POST /contacts/bulk` body.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BulkBody {
    /// addTags, removeTags, addGroups, removeGroups, optIn, optOut, block or unblock.
    pub action: Option<String>,
    /// At most 500.
    pub contact_ids: Option<Vec<String>>,
    pub tags: Option<Vec<String>>,
    pub groups: Option<Vec<String>>,
}

/// `POST /contacts/bulk` answer.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct BulkAnswer {
    pub success: bool,
    pub action: String,
    /// Contacts changed.
    pub modified: i64,
    /// Contacts found among the ids.
    pub matched: i64,
}

/// `DELETE /contacts/bulk` body.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BulkDeleteBody {
    /// At most 500.
    pub contact_ids: Option<Vec<String>>,
}

/// `DELETE /contacts/bulk` answer.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct BulkDeleteAnswer {
    pub success: bool,
    pub deleted: i64,
}

/// GET /v1/whatsapp/contacts — the account's contacts by name, filtered and paged.
#[utoipa::path(get, path = "/v1/whatsapp/contacts", tag = "zernio-business",
    params(("accountId" = String, Query), ("search" = Option<String>, Query),
        ("tag" = Option<String>, Query), ("group" = Option<String>, Query),
        ("optedIn" = Option<String>, Query, description = "\"true\" or \"false\""),
        ("limit" = Option<i64>, Query, minimum = 1, description = "At least 1, default 50; above 100 reads as 100."),
        ("skip" = Option<i64>, Query, minimum = 0, description = "Offset, default 0.")),
    responses((status = 200, body = ContactList), (status = 400, body = ZernioErrorBody),
        (status = 401, body = ZernioErrorBody), (status = 404, body = ZernioErrorBody)))]
async fn list_contacts(
    State(app): State<AppState>,
    caller: Caller,
    RawQuery(raw): RawQuery,
) -> ZResult<Json<ContactList>> {
    let q = query(raw).map_err(ZernioError::from)?;
    let get = |k: &str| q.get(k).map(str::to_owned);
    let list = app
        .services
        .crm
        .list(
            &caller,
            ListInput {
                account_id: get("accountId"),
                search: get("search"),
                tag: get("tag"),
                group: get("group"),
                opted_in: get("optedIn"),
                limit: get("limit"),
                skip: get("skip"),
            },
        )
        .await?;
    let shown = list.page.contacts.len() as i64;
    Ok(Json(ContactList {
        success: true,
        contacts: list.page.contacts.iter().map(ContactView::from).collect(),
        filters: ContactFilters {
            tags: list.page.tags,
            groups: list.page.groups,
        },
        pagination: Pagination {
            total: list.page.total,
            limit: list.limit,
            skip: list.skip,
            has_more: list.skip + shown < list.page.total,
        },
    }))
}

/// POST /v1/whatsapp/contacts — creates a contact (409 when the phone is already one).
#[utoipa::path(post, path = "/v1/whatsapp/contacts", tag = "zernio-business",
    request_body = CreateContactBody,
    responses((status = 200, body = ContactAnswer), (status = 400, body = ZernioErrorBody),
        (status = 401, body = ZernioErrorBody), (status = 404, body = ZernioErrorBody),
        (status = 409, body = ZernioErrorBody)))]
async fn create_contact(
    State(app): State<AppState>,
    caller: Caller,
    DialectJson(body, _): ZJson<CreateContactBody>,
) -> ZResult<Json<ContactAnswer>> {
    let account = body.account_id.clone();
    let contact = app
        .services
        .crm
        .create(&caller, account.as_deref(), body.input())
        .await?;
    Ok(Json(ContactAnswer {
        success: true,
        contact: (&contact).into(),
    }))
}

/// GET /v1/whatsapp/contacts/{contactId} — one contact with every field.
#[utoipa::path(get, path = "/v1/whatsapp/contacts/{contactId}", tag = "zernio-business",
    params(("contactId" = String, Path)),
    responses((status = 200, body = ContactAnswer), (status = 401, body = ZernioErrorBody),
        (status = 404, body = ZernioErrorBody)))]
async fn get_contact(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ZResult<Json<ContactAnswer>> {
    let contact = app.services.crm.get(&caller, &id).await?;
    Ok(Json(ContactAnswer {
        success: true,
        contact: (&contact).into(),
    }))
}

/// PUT /v1/whatsapp/contacts/{contactId} — changes the given fields.
#[utoipa::path(put, path = "/v1/whatsapp/contacts/{contactId}", tag = "zernio-business",
    params(("contactId" = String, Path)), request_body = UpdateContactBody,
    responses((status = 200, body = ContactAnswer), (status = 400, body = ZernioErrorBody),
        (status = 401, body = ZernioErrorBody), (status = 404, body = ZernioErrorBody)))]
async fn update_contact(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    DialectJson(body, _): ZJson<UpdateContactBody>,
) -> ZResult<Json<ContactAnswer>> {
    let contact = app
        .services
        .crm
        .update(
            &caller,
            &id,
            ContactPatch {
                name: body.name,
                email: body.email,
                company: body.company,
                tags: body.tags,
                groups: body.groups,
                is_opted_in: body.is_opted_in,
                is_blocked: body.is_blocked,
                custom_fields: body.custom_fields,
                notes: body.notes,
            },
        )
        .await?;
    Ok(Json(ContactAnswer {
        success: true,
        contact: (&contact).into(),
    }))
}

/// DELETE /v1/whatsapp/contacts/{contactId} — deletes a contact.
#[utoipa::path(delete, path = "/v1/whatsapp/contacts/{contactId}", tag = "zernio-business",
    params(("contactId" = String, Path)),
    responses((status = 200, body = MessageAnswer), (status = 401, body = ZernioErrorBody),
        (status = 404, body = ZernioErrorBody)))]
async fn delete_contact(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ZResult<Json<MessageAnswer>> {
    app.services.crm.delete(&caller, &id).await?;
    Ok(Json(MessageAnswer {
        success: true,
        message: "Contact deleted successfully".into(),
    }))
}

/// POST /v1/whatsapp/contacts/import — imports up to 1,000 contacts, with a result per row.
#[utoipa::path(post, path = "/v1/whatsapp/contacts/import", tag = "zernio-business",
    request_body = ImportBody,
    responses((status = 200, body = ImportAnswer), (status = 400, body = ZernioErrorBody),
        (status = 401, body = ZernioErrorBody), (status = 404, body = ZernioErrorBody)))]
async fn import_contacts(
    State(app): State<AppState>,
    caller: Caller,
    DialectJson(body, _): ZJson<ImportBody>,
) -> ZResult<Json<ImportAnswer>> {
    let Some(rows) = body.contacts else {
        return Err(ServiceError::invalid("contacts", "contacts is required").into());
    };
    let results = app
        .services
        .crm
        .import(
            &caller,
            ImportInput {
                account_id: body.account_id,
                contacts: rows.into_iter().map(CreateContactBody::input).collect(),
                default_tags: body.default_tags,
                default_groups: body.default_groups,
                skip_duplicates: body.skip_duplicates,
            },
        )
        .await?;
    let mut summary = ImportSummary {
        total: results.len() as i64,
        created: 0,
        skipped: 0,
        failed: 0,
    };
    let results = results
        .into_iter()
        .map(|r| {
            let (success, contact_id, error) = match r.outcome {
                ImportOutcome::Created(id) => {
                    summary.created += 1;
                    (true, Some(id.to_string()), None)
                }
                ImportOutcome::Skipped(e) => {
                    summary.skipped += 1;
                    (false, None, Some(e))
                }
                ImportOutcome::Failed(e) => {
                    summary.failed += 1;
                    (false, None, Some(e))
                }
            };
            ImportRowResult {
                phone: r.phone,
                name: r.name,
                success,
                contact_id,
                error,
            }
        })
        .collect();
    Ok(Json(ImportAnswer {
        success: true,
        summary,
        results,
    }))
}

/// POST /v1/whatsapp/contacts/bulk — one action on up to 500 contacts.
#[utoipa::path(post, path = "/v1/whatsapp/contacts/bulk", tag = "zernio-business",
    request_body = BulkBody,
    responses((status = 200, body = BulkAnswer), (status = 400, body = ZernioErrorBody),
        (status = 401, body = ZernioErrorBody)))]
async fn bulk_update_contacts(
    State(app): State<AppState>,
    caller: Caller,
    DialectJson(body, _): ZJson<BulkBody>,
) -> ZResult<Json<BulkAnswer>> {
    let outcome = app
        .services
        .crm
        .bulk(
            &caller,
            body.action.as_deref(),
            body.contact_ids,
            body.tags,
            body.groups,
        )
        .await?;
    Ok(Json(BulkAnswer {
        success: true,
        action: outcome.action.name().into(),
        modified: outcome.modified,
        matched: outcome.matched,
    }))
}

/// DELETE /v1/whatsapp/contacts/bulk — deletes up to 500 contacts.
#[utoipa::path(delete, path = "/v1/whatsapp/contacts/bulk", tag = "zernio-business",
    request_body = BulkDeleteBody,
    responses((status = 200, body = BulkDeleteAnswer), (status = 400, body = ZernioErrorBody),
        (status = 401, body = ZernioErrorBody)))]
async fn bulk_delete_contacts(
    State(app): State<AppState>,
    caller: Caller,
    DialectJson(body, _): ZJson<BulkDeleteBody>,
) -> ZResult<Json<BulkDeleteAnswer>> {
    let deleted = app
        .services
        .crm
        .bulk_delete(&caller, body.contact_ids)
        .await?;
    Ok(Json(BulkDeleteAnswer {
        success: true,
        deleted: deleted as i64,
    }))
}
