//! Phone numbers: `/v1/whatsapp/phone-numbers…` — the account's numbers, the pool's (and
//! Telnyx's) available ones, purchase and release, and Meta's registration of a number
//! (`request-code`, `verify`). Refusals of state (quota reached, already released, not
//! pre-verified) are 400s with their own `code`.

use axum::{
    Json,
    extract::{Path, RawQuery, State},
};
use http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use wharf_core::time::rfc3339;
use wharf_store::PhoneNumberRow;

use super::{BResult, object, opt_string, query, service_error};
use crate::{
    ServiceError,
    http::{
        AppState,
        error::ApiError,
        extract::JsonBytes,
        zernio::{ZernioError, ZernioErrorBody},
    },
    services::{
        Caller,
        numbers::{AvailableQuery, Offer, meta::code_method},
    },
};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_numbers))
        .routes(routes!(available_numbers))
        .routes(routes!(preverified_numbers))
        .routes(routes!(purchase_number))
        .routes(routes!(get_number, release_number))
        .routes(routes!(request_code))
        .routes(routes!(verify_number))
}

/// A state refusal is Zernio's 400 with the reason as its `code`; the rest as elsewhere.
fn numbers_error(e: ServiceError) -> ZernioError {
    match e {
        ServiceError::Conflict {
            reason_code,
            message,
        } => ZernioError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            reason_code,
            message,
        ),
        other => service_error(other),
    }
}

/// A number of the list.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ZNumberItem {
    #[serde(rename = "_id")]
    pub id: String,
    /// E.164.
    pub phone_number: String,
    pub country: String,
    /// `provisioning`, `active`, `suspended`, `releasing` or `released`.
    pub status: String,
    /// The caller's label (Wharf has no profile objects: the string given at purchase).
    pub profile_id: Option<String>,
    pub provisioned_at: Option<String>,
    pub meta_preverified_id: Option<String>,
    /// `pending`, `code_requested` or `verified`.
    pub meta_verification_status: Option<String>,
    pub created_at: String,
}

/// `GET /v1/whatsapp/phone-numbers` answer.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ZNumberList {
    pub numbers: Vec<ZNumberItem>,
}

/// One number.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ZNumber {
    pub id: String,
    pub phone_number: String,
    pub status: String,
    pub country: String,
    pub provisioned_at: Option<String>,
    pub meta_preverified_id: Option<String>,
    pub meta_verification_status: Option<String>,
    /// When Meta verified it (a Wharf extension).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta_verified_at: Option<String>,
    /// When that verification expires (a Wharf extension).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta_verification_expires_at: Option<String>,
}

impl From<&PhoneNumberRow> for ZNumber {
    fn from(r: &PhoneNumberRow) -> Self {
        Self {
            id: r.id.to_string(),
            phone_number: r.phone_number.clone(),
            status: r.status.as_str().into(),
            country: r.country.clone(),
            provisioned_at: r.provisioned_at.map(rfc3339),
            meta_preverified_id: r.meta_preverified_id.clone(),
            meta_verification_status: r.meta_verification_status.clone(),
            meta_verified_at: r.meta_verified_at.map(rfc3339),
            meta_verification_expires_at: r.meta_verification_expires_at.map(rfc3339),
        }
    }
}

/// `GET /v1/whatsapp/phone-numbers/{phoneNumberId}` answer.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ZNumberAnswer {
    pub phone_number: ZNumber,
}

/// A number that can be purchased.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ZAvailableNumber {
    pub phone_number: String,
    pub country: String,
    pub locality: Option<String>,
    pub area_code: Option<String>,
    /// `pool` (the operator's) or `telnyx`.
    pub source: String,
}

/// `GET /v1/whatsapp/phone-numbers/available` answer.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ZAvailableList {
    pub numbers: Vec<ZAvailableNumber>,
}

/// A verified number.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ZPreverifiedNumber {
    pub id: String,
    pub phone_number: String,
    pub meta_preverified_id: String,
    pub meta_verified_at: Option<String>,
    pub meta_verification_expires_at: Option<String>,
}

/// `GET /v1/whatsapp/phone-numbers/preverified` answer.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ZPreverified {
    /// The numbers' Meta pre-verification ids.
    pub pre_verified_ids: Vec<String>,
    pub numbers: Vec<ZPreverifiedNumber>,
}

/// `POST /v1/whatsapp/phone-numbers/purchase` answer: always the provisioned number
/// (Wharf has no checkout).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ZPurchaseAnswer {
    pub message: String,
    pub phone_number: ZNumber,
}

/// A released number.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ZReleased {
    pub id: String,
    pub phone_number: String,
    /// `released`.
    pub status: String,
    pub released_at: Option<String>,
}

/// `DELETE /v1/whatsapp/phone-numbers/{phoneNumberId}` answer.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ZReleaseAnswer {
    pub message: String,
    pub phone_number: ZReleased,
}

/// `POST …/request-code` answer.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ZCodeAnswer {
    pub message: String,
    /// `SMS` or `VOICE`.
    pub method: String,
}

/// `POST …/verify` answer.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ZVerifyAnswer {
    pub message: String,
    pub meta_verified_at: Option<String>,
    pub meta_verification_expires_at: Option<String>,
}

/// `POST …/purchase` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ZPurchaseBody {
    /// The caller's label for the number (required; stored and filtered on).
    #[schema(min_length = 1, max_length = 200)]
    pub profile_id: String,
    /// Only a number of this country, ISO 3166-1 alpha-2 (a Wharf extension, as Zernio's
    /// newer SDKs send it).
    pub country: Option<String>,
}

/// `POST …/request-code` body (optional).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ZCodeBody {
    /// `SMS` (default) or `VOICE`.
    #[schema(pattern = "^(SMS|VOICE)$")]
    pub method: Option<String>,
    /// The cloud session whose credentials reach Meta (a Wharf extension; default: the
    /// account's oldest cloud session).
    pub account_id: Option<String>,
}

/// `POST …/verify` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ZVerifyBody {
    /// The 6-digit code.
    #[schema(pattern = "^[0-9]{6}$")]
    pub code: String,
    /// As for `request-code`.
    pub account_id: Option<String>,
}

/// GET /v1/whatsapp/phone-numbers — the account's numbers (released ones only with
/// `status=released`).
#[utoipa::path(get, path = "/v1/whatsapp/phone-numbers", tag = "zernio-business",
    params(("status" = Option<String>, Query, pattern = "^(provisioning|active|suspended|releasing|released)$"),
        ("profileId" = Option<String>, Query)),
    responses((status = 200, body = ZNumberList), (status = 400, body = ZernioErrorBody),
        (status = 401, body = ZernioErrorBody)))]
async fn list_numbers(
    State(app): State<AppState>,
    caller: Caller,
    RawQuery(raw): RawQuery,
) -> BResult<Json<ZNumberList>> {
    let q = query(raw).map_err(ZernioError::from)?;
    let rows = app
        .services
        .numbers
        .list(&caller, q.get("status"), q.get("profileId"))
        .await
        .map_err(numbers_error)?;
    Ok(Json(ZNumberList {
        numbers: rows
            .iter()
            .map(|r| ZNumberItem {
                id: r.id.to_string(),
                phone_number: r.phone_number.clone(),
                country: r.country.clone(),
                status: r.status.as_str().into(),
                profile_id: r.profile_id.clone(),
                provisioned_at: r.provisioned_at.map(rfc3339),
                meta_preverified_id: r.meta_preverified_id.clone(),
                meta_verification_status: r.meta_verification_status.clone(),
                created_at: rfc3339(r.created_at),
            })
            .collect(),
    }))
}

/// GET /v1/whatsapp/phone-numbers/available — the pool's available numbers (then
/// Telnyx's, when configured): `prefix` (area code), `locality`, `contains`, `limit`
/// (default 20, at most 100).
#[utoipa::path(get, path = "/v1/whatsapp/phone-numbers/available", tag = "zernio-business",
    params(("prefix" = Option<String>, Query), ("areaCode" = Option<String>, Query, description = "Another name of prefix."),
        ("country" = Option<String>, Query, description = "ISO 3166-1 alpha-2 (a Wharf extension)."),
        ("locality" = Option<String>, Query),
        ("contains" = Option<String>, Query),
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 100, description = "1..100, default 20.")),
    responses((status = 200, body = ZAvailableList), (status = 400, body = ZernioErrorBody),
        (status = 401, body = ZernioErrorBody), (status = 503, body = ZernioErrorBody)))]
async fn available_numbers(
    State(app): State<AppState>,
    caller: Caller,
    RawQuery(raw): RawQuery,
) -> BResult<Json<ZAvailableList>> {
    let q = query(raw).map_err(ZernioError::from)?;
    let offers = app
        .services
        .numbers
        .available(
            &caller,
            AvailableQuery {
                country: q.get("country"),
                prefix: q.get("prefix").or_else(|| q.get("areaCode")),
                locality: q.get("locality"),
                contains: q.get("contains"),
                limit: q.get("limit"),
            },
        )
        .await
        .map_err(numbers_error)?;
    Ok(Json(ZAvailableList {
        numbers: offers
            .into_iter()
            .map(|o: Offer| ZAvailableNumber {
                phone_number: o.phone_number,
                country: o.country,
                locality: o.locality,
                area_code: o.area_code,
                source: o.source.into(),
            })
            .collect(),
    }))
}

/// GET /v1/whatsapp/phone-numbers/preverified — the profile's numbers whose Meta
/// verification holds.
#[utoipa::path(get, path = "/v1/whatsapp/phone-numbers/preverified", tag = "zernio-business",
    params(("profileId" = String, Query)),
    responses((status = 200, body = ZPreverified), (status = 400, body = ZernioErrorBody),
        (status = 401, body = ZernioErrorBody)))]
async fn preverified_numbers(
    State(app): State<AppState>,
    caller: Caller,
    RawQuery(raw): RawQuery,
) -> BResult<Json<ZPreverified>> {
    let q = query(raw).map_err(ZernioError::from)?;
    let rows = app
        .services
        .numbers
        .preverified(&caller, q.get("profileId"))
        .await
        .map_err(numbers_error)?;
    let numbers: Vec<ZPreverifiedNumber> = rows
        .iter()
        .filter_map(|r| {
            Some(ZPreverifiedNumber {
                id: r.id.to_string(),
                phone_number: r.phone_number.clone(),
                meta_preverified_id: r.meta_preverified_id.clone()?,
                meta_verified_at: r.meta_verified_at.map(rfc3339),
                meta_verification_expires_at: r.meta_verification_expires_at.map(rfc3339),
            })
        })
        .collect();
    Ok(Json(ZPreverified {
        pre_verified_ids: numbers
            .iter()
            .map(|n| n.meta_preverified_id.clone())
            .collect(),
        numbers,
    }))
}

/// POST /v1/whatsapp/phone-numbers/purchase — assigns a number at once (the pool's, else
/// one ordered from Telnyx); 400 when the account holds its quota.
#[utoipa::path(post, path = "/v1/whatsapp/phone-numbers/purchase", tag = "zernio-business",
    request_body = ZPurchaseBody,
    responses((status = 200, body = ZPurchaseAnswer), (status = 400, body = ZernioErrorBody),
        (status = 401, body = ZernioErrorBody), (status = 503, body = ZernioErrorBody)))]
async fn purchase_number(
    State(app): State<AppState>,
    caller: Caller,
    body: Result<JsonBytes, ApiError>,
) -> BResult<Json<ZPurchaseAnswer>> {
    let (body, _) = object(body)?;
    let profile = opt_string(&body, "profileId")?;
    let country = opt_string(&body, "country")?;
    let row = app
        .services
        .numbers
        .purchase(&caller, profile.as_deref(), country.as_deref())
        .await
        .map_err(numbers_error)?;
    Ok(Json(ZPurchaseAnswer {
        message: "Phone number provisioned successfully".into(),
        phone_number: ZNumber::from(&row),
    }))
}

/// GET /v1/whatsapp/phone-numbers/{phoneNumberId} — one of the account's numbers.
#[utoipa::path(get, path = "/v1/whatsapp/phone-numbers/{phoneNumberId}", tag = "zernio-business",
    params(("phoneNumberId" = String, Path)),
    responses((status = 200, body = ZNumberAnswer), (status = 401, body = ZernioErrorBody),
        (status = 404, body = ZernioErrorBody)))]
async fn get_number(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> BResult<Json<ZNumberAnswer>> {
    let row = app
        .services
        .numbers
        .get(&caller, &id)
        .await
        .map_err(numbers_error)?;
    Ok(Json(ZNumberAnswer {
        phone_number: ZNumber::from(&row),
    }))
}

/// DELETE /v1/whatsapp/phone-numbers/{phoneNumberId} — releases the number (a pool
/// number goes back to the pool; a Telnyx number is given back to Telnyx).
#[utoipa::path(delete, path = "/v1/whatsapp/phone-numbers/{phoneNumberId}", tag = "zernio-business",
    params(("phoneNumberId" = String, Path)),
    responses((status = 200, body = ZReleaseAnswer), (status = 400, body = ZernioErrorBody),
        (status = 401, body = ZernioErrorBody), (status = 404, body = ZernioErrorBody),
        (status = 503, body = ZernioErrorBody)))]
async fn release_number(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> BResult<Json<ZReleaseAnswer>> {
    let row = app
        .services
        .numbers
        .release(&caller, &id)
        .await
        .map_err(numbers_error)?;
    Ok(Json(ZReleaseAnswer {
        message: "Phone number released successfully".into(),
        phone_number: ZReleased {
            id: row.id.to_string(),
            phone_number: row.phone_number.clone(),
            status: row.status.as_str().into(),
            released_at: row.released_at.map(rfc3339),
        },
    }))
}

/// POST /v1/whatsapp/phone-numbers/{phoneNumberId}/request-code — Meta sends the number a
/// verification code (through Graph, with the account's Cloud API credentials).
#[utoipa::path(post, path = "/v1/whatsapp/phone-numbers/{phoneNumberId}/request-code",
    tag = "zernio-business", params(("phoneNumberId" = String, Path)), request_body = Option<ZCodeBody>,
    responses((status = 200, body = ZCodeAnswer), (status = 400, body = ZernioErrorBody),
        (status = 401, body = ZernioErrorBody), (status = 404, body = ZernioErrorBody),
        (status = 503, body = ZernioErrorBody)))]
async fn request_code(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: Result<JsonBytes, ApiError>,
) -> BResult<Json<ZCodeAnswer>> {
    let (body, _) = object(body)?;
    let method = opt_string(&body, "method")?;
    let account = opt_string(&body, "accountId")?;
    let parsed = code_method(method.as_deref()).map_err(numbers_error)?;
    app.services
        .numbers
        .request_code(&caller, &id, parsed, account.as_deref())
        .await
        .map_err(numbers_error)?;
    let method = method.unwrap_or_else(|| "SMS".into());
    Ok(Json(ZCodeAnswer {
        message: format!("Verification code sent via {method}"),
        method,
    }))
}

/// POST /v1/whatsapp/phone-numbers/{phoneNumberId}/verify — enters Meta's code; the
/// verification holds 90 days.
#[utoipa::path(post, path = "/v1/whatsapp/phone-numbers/{phoneNumberId}/verify",
    tag = "zernio-business", params(("phoneNumberId" = String, Path)), request_body = ZVerifyBody,
    responses((status = 200, body = ZVerifyAnswer), (status = 400, body = ZernioErrorBody),
        (status = 401, body = ZernioErrorBody), (status = 404, body = ZernioErrorBody),
        (status = 503, body = ZernioErrorBody)))]
async fn verify_number(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: Result<JsonBytes, ApiError>,
) -> BResult<Json<ZVerifyAnswer>> {
    let (body, _) = object(body)?;
    let code = opt_string(&body, "code")?;
    let account = opt_string(&body, "accountId")?;
    let (row, now) = app
        .services
        .numbers
        .verify(&caller, &id, code.as_deref(), account.as_deref())
        .await
        .map_err(numbers_error)?;
    Ok(Json(ZVerifyAnswer {
        message: if now {
            "Phone number verified successfully"
        } else {
            "Phone number is already verified"
        }
        .into(),
        meta_verified_at: row.meta_verified_at.map(rfc3339),
        meta_verification_expires_at: row.meta_verification_expires_at.map(rfc3339),
    }))
}
