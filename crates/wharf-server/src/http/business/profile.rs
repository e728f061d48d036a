//! The business profile: `GET/POST /v1/whatsapp/business-profile`. Cloud sessions read and
//! write Meta's profile through Graph; emulator sessions keep theirs in Wharf; web sessions
//! are refused (`unsupported_by_engine`, naming the field).

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
    MessageAnswer, query,
};
use crate::services::{Caller, business_profile::ProfileUpdate};

/// The routes.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_business_profile, update_business_profile))
}

/// A business profile.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BusinessProfileView {
    /// At most 139 characters.
    pub about: Option<String>,
    pub address: Option<String>,
    /// At most 512 characters.
    pub description: Option<String>,
    pub email: Option<String>,
    pub profile_picture_url: Option<String>,
    /// At most 2.
    pub websites: Vec<String>,
    /// Meta's business category.
    pub vertical: Option<String>,
}

/// `GET` answer.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BusinessProfileAnswer {
    pub success: bool,
    pub business_profile: BusinessProfileView,
}

/// `POST` body: only the given fields change.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpdateProfileBody {
    pub account_id: Option<String>,
    pub about: Option<String>,
    pub address: Option<String>,
    pub description: Option<String>,
    pub email: Option<String>,
    pub websites: Option<Vec<String>>,
    pub vertical: Option<String>,
    /// A handle from Meta's resumable upload (cloud sessions).
    pub profile_picture_handle: Option<String>,
}

/// GET /v1/whatsapp/business-profile — the number's business profile.
#[utoipa::path(get, path = "/v1/whatsapp/business-profile", tag = "zernio-business",
    params(("accountId" = String, Query)),
    responses((status = 200, body = BusinessProfileAnswer), (status = 400, body = ZernioErrorBody),
        (status = 401, body = ZernioErrorBody), (status = 404, body = ZernioErrorBody)))]
async fn get_business_profile(
    State(app): State<AppState>,
    caller: Caller,
    RawQuery(raw): RawQuery,
) -> ZResult<Json<BusinessProfileAnswer>> {
    let q = query(raw).map_err(ZernioError::from)?;
    let p = app
        .services
        .business_profile
        .get(&caller, q.get("accountId"))
        .await?;
    Ok(Json(BusinessProfileAnswer {
        success: true,
        business_profile: BusinessProfileView {
            about: p.about,
            address: p.address,
            description: p.description,
            email: p.email,
            profile_picture_url: p.profile_picture_url,
            websites: p.websites,
            vertical: p.vertical,
        },
    }))
}

/// POST /v1/whatsapp/business-profile — changes the given fields of the profile.
#[utoipa::path(post, path = "/v1/whatsapp/business-profile", tag = "zernio-business",
    request_body = UpdateProfileBody,
    responses((status = 200, body = MessageAnswer), (status = 400, body = ZernioErrorBody),
        (status = 401, body = ZernioErrorBody), (status = 404, body = ZernioErrorBody)))]
async fn update_business_profile(
    State(app): State<AppState>,
    caller: Caller,
    DialectJson(body, _): ZJson<UpdateProfileBody>,
) -> ZResult<Json<MessageAnswer>> {
    app.services
        .business_profile
        .update(
            &caller,
            body.account_id.as_deref(),
            ProfileUpdate {
                about: body.about,
                address: body.address,
                description: body.description,
                email: body.email,
                websites: body.websites,
                vertical: body.vertical,
                profile_picture_handle: body.profile_picture_handle,
            },
        )
        .await?;
    Ok(Json(MessageAnswer {
        success: true,
        message: "Business profile updated successfully".into(),
    }))
}
