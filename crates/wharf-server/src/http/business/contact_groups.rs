//! Contact groups: `GET/POST/DELETE /v1/whatsapp/groups`. Groups are derived from the
//! contacts' `groups`; renaming or deleting one rewrites every contact in it at once.

use axum::{
    Json,
    extract::{RawQuery, State},
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    super::{
        AppState,
        extract::DialectJson,
        zernio::{ZJson, ZResult, ZernioError, ZernioErrorBody},
    },
    query,
};
use crate::services::Caller;

/// The routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_groups, rename_group, delete_group))
}

/// A group with its counts.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GroupView {
    pub name: String,
    /// Contacts in the group.
    pub total_count: i64,
    /// Opted-in contacts in the group.
    pub opted_in_count: i64,
}

/// The account's totals.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GroupsSummary {
    pub total_contacts: i64,
    pub opted_in_contacts: i64,
    pub group_count: i64,
}

/// `GET` answer.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct GroupList {
    pub success: bool,
    pub groups: Vec<GroupView>,
    pub summary: GroupsSummary,
}

/// `POST` body.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RenameGroupBody {
    pub account_id: Option<String>,
    pub old_name: Option<String>,
    pub new_name: Option<String>,
}

/// `DELETE` body.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeleteGroupBody {
    pub account_id: Option<String>,
    pub group_name: Option<String>,
}

/// `POST` and `DELETE` answer.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct GroupChanged {
    pub success: bool,
    pub message: String,
    /// Contacts updated.
    pub modified: i64,
}

/// GET /v1/whatsapp/groups — the account's groups with their counts.
#[utoipa::path(get, path = "/v1/whatsapp/groups", tag = "zernio-business",
    params(("accountId" = String, Query)),
    responses((status = 200, body = GroupList), (status = 400, body = ZernioErrorBody),
        (status = 401, body = ZernioErrorBody), (status = 404, body = ZernioErrorBody)))]
async fn list_groups(
    State(app): State<AppState>,
    caller: Caller,
    RawQuery(raw): RawQuery,
) -> ZResult<Json<GroupList>> {
    let q = query(raw).map_err(ZernioError::from)?;
    let summary = app.services.crm.groups(&caller, q.get("accountId")).await?;
    Ok(Json(GroupList {
        success: true,
        summary: GroupsSummary {
            total_contacts: summary.total_contacts,
            opted_in_contacts: summary.opted_in_contacts,
            group_count: summary.groups.len() as i64,
        },
        groups: summary
            .groups
            .into_iter()
            .map(|g| GroupView {
                name: g.name,
                total_count: g.total,
                opted_in_count: g.opted_in,
            })
            .collect(),
    }))
}

/// POST /v1/whatsapp/groups — renames a group on every contact in it.
#[utoipa::path(post, path = "/v1/whatsapp/groups", tag = "zernio-business",
    request_body = RenameGroupBody,
    responses((status = 200, body = GroupChanged), (status = 400, body = ZernioErrorBody),
        (status = 401, body = ZernioErrorBody), (status = 404, body = ZernioErrorBody)))]
async fn rename_group(
    State(app): State<AppState>,
    caller: Caller,
    DialectJson(body, _): ZJson<RenameGroupBody>,
) -> ZResult<Json<GroupChanged>> {
    let modified = app
        .services
        .crm
        .rename_group(
            &caller,
            body.account_id.as_deref(),
            body.old_name.as_deref(),
            body.new_name.as_deref(),
        )
        .await?;
    Ok(Json(GroupChanged {
        success: true,
        message: "Group renamed successfully".into(),
        modified,
    }))
}

/// DELETE /v1/whatsapp/groups — removes a group from every contact in it (the contacts
/// stay).
#[utoipa::path(delete, path = "/v1/whatsapp/groups", tag = "zernio-business",
    request_body = DeleteGroupBody,
    responses((status = 200, body = GroupChanged), (status = 400, body = ZernioErrorBody),
        (status = 401, body = ZernioErrorBody), (status = 404, body = ZernioErrorBody)))]
async fn delete_group(
    State(app): State<AppState>,
    caller: Caller,
    DialectJson(body, _): ZJson<DeleteGroupBody>,
) -> ZResult<Json<GroupChanged>> {
    let modified = app
        .services
        .crm
        .delete_group(
            &caller,
            body.account_id.as_deref(),
            body.group_name.as_deref(),
        )
        .await?;
    Ok(Json(GroupChanged {
        success: true,
        message: "Group deleted successfully".into(),
        modified,
    }))
}
