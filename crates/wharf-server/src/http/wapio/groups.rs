//! The Groups folder of the Wapio API (`/api/groups…`), with the SDK's
//! `/participants/add` and `/participants/remove`. The session is chosen as for contacts.

use axum::{
    Json,
    extract::{Path, State},
    http::StatusCode,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use wharf_core::{
    Jid,
    jid::JidServer,
    social::{
        GroupChange, GroupInfo, GroupSettings, Participant, ParticipantAction, ParticipantResult,
    },
    time::rfc3339,
};

use super::contacts::{SessionQuery, person, session_param};
use crate::{
    http::{
        AppState,
        error::{ApiError, ErrorBody},
        extract::{ApiJson, JsonBytes, QueryPairs, parse_json},
    },
    services::Caller,
};

type ApiResult<T> = Result<T, ApiError>;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_groups, create_group))
        .routes(routes!(get_group))
        .routes(routes!(get_group_metadata))
        .routes(routes!(
            list_participants,
            add_participants,
            remove_participants
        ))
        .routes(routes!(add_participants_sdk))
        .routes(routes!(remove_participants_sdk))
        .routes(routes!(promote_participants))
        .routes(routes!(demote_participants))
        .routes(routes!(update_settings))
        .routes(routes!(get_group_picture))
        .routes(routes!(get_invite_link))
        .routes(routes!(reset_invite_link))
        .routes(routes!(leave_group))
        .routes(routes!(resolve_invite))
        .routes(routes!(accept_invite))
}

fn group_param(raw: &str) -> ApiResult<Jid> {
    match Jid::parse(raw) {
        Ok(jid) if jid.server() == JidServer::Group => Ok(jid),
        _ => Err(ApiError::invalid(
            "groupJid",
            "must be a group JID ending in @g.us",
        )),
    }
}

/// A group.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GroupView {
    pub jid: String,
    pub subject: String,
    pub description: Option<String>,
    /// Who created it.
    pub owner: Option<String>,
    pub created_at: String,
    /// How many participants it has.
    pub size: usize,
    pub participants: Vec<Participant>,
    pub settings: GroupSettings,
}

impl From<&GroupInfo> for GroupView {
    fn from(g: &GroupInfo) -> Self {
        Self {
            jid: g.jid.to_string(),
            subject: g.subject.clone(),
            description: g.description.clone(),
            owner: g.owner.as_ref().map(ToString::to_string),
            created_at: rfc3339(g.created_at),
            size: g.participants.len(),
            participants: g.participants.clone(),
            settings: g.settings.clone(),
        }
    }
}

/// The session's groups.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GroupListView {
    pub data: Vec<GroupView>,
}

/// A group created: the group and each participant's outcome.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreatedGroupView {
    pub group: GroupView,
    pub results: Vec<ParticipantResult>,
}

/// A group's participants.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ParticipantListView {
    pub group_jid: String,
    pub data: Vec<Participant>,
}

/// What a participant request did, per participant.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ParticipantResultsView {
    pub group_jid: String,
    /// `add`, `remove`, `promote` or `demote`.
    pub action: String,
    pub results: Vec<ParticipantResult>,
}

/// An invite link.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InviteLinkView {
    pub group_jid: String,
    pub invite_code: String,
    pub invite_link: String,
}

/// What an invite code leads to.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InvitePreviewView {
    pub group_jid: String,
    pub subject: String,
    pub description: Option<String>,
    pub size: usize,
}

/// A group left.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LeftGroupView {
    pub group_jid: String,
    pub left: bool,
}

/// `POST /api/groups`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateGroupBody {
    pub subject: String,
    /// Phone numbers or JIDs.
    #[serde(default)]
    pub participants: Vec<String>,
}

/// A participant request's body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ParticipantsBody {
    /// Phone numbers or JIDs.
    pub participants: Vec<String>,
}

/// `PUT /api/groups/{groupJid}/settings`: any of these keys; another key is refused.
#[derive(Debug, Deserialize, ToSchema)]
#[allow(dead_code)]
pub struct GroupSettingsBody {
    pub subject: Option<String>,
    /// `null` clears it.
    pub description: Option<String>,
    /// Only admins send messages.
    pub announce: Option<bool>,
    /// Only admins edit the subject, description and picture.
    pub locked: Option<bool>,
    /// Disappearing messages: 0, 86400, 604800 or 7776000 seconds.
    pub ephemeral_seconds: Option<u32>,
    /// Joining by link needs an admin's approval.
    pub join_approval: Option<bool>,
}

/// `POST /api/groups/invite/accept`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AcceptInviteBody {
    /// The code, or the whole `https://chat.whatsapp.com/…` link.
    pub invite_code: String,
}

fn people(list: &[String]) -> ApiResult<Vec<Jid>> {
    list.iter()
        .enumerate()
        .map(|(i, p)| person(&format!("participants[{i}]"), p))
        .collect()
}

/// GET /api/groups — the groups the session is in.
#[utoipa::path(get, path = "/api/groups", tag = "groups", params(SessionQuery),
    responses((status = 200, body = GroupListView), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn list_groups(
    State(app): State<AppState>,
    caller: Caller,
    query: QueryPairs,
) -> ApiResult<Json<GroupListView>> {
    let session = session_param(&query, &[])?;
    let groups = app.services.social.groups(&caller, session).await?;
    Ok(Json(GroupListView {
        data: groups.iter().map(GroupView::from).collect(),
    }))
}

/// POST /api/groups — creates a group; `results` says what happened to each participant
/// (added, not on WhatsApp, privacy-restricted).
#[utoipa::path(post, path = "/api/groups", tag = "groups", params(SessionQuery),
    request_body = CreateGroupBody,
    responses((status = 201, body = CreatedGroupView), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn create_group(
    State(app): State<AppState>,
    caller: Caller,
    query: QueryPairs,
    ApiJson(body): ApiJson<CreateGroupBody>,
) -> ApiResult<(StatusCode, Json<CreatedGroupView>)> {
    let session = session_param(&query, &[])?;
    let participants = people(&body.participants)?;
    let created = app
        .services
        .social
        .create_group(&caller, session, &body.subject, participants)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedGroupView {
            group: GroupView::from(&created.group),
            results: created.participants,
        }),
    ))
}

async fn one_group(
    app: &AppState,
    caller: &Caller,
    jid: &str,
    query: &QueryPairs,
) -> ApiResult<GroupInfo> {
    let session = session_param(query, &[])?;
    let jid = group_param(jid)?;
    Ok(app.services.social.group(caller, session, &jid).await?)
}

/// GET /api/groups/{groupJid} — a group the session is in.
#[utoipa::path(get, path = "/api/groups/{groupJid}", tag = "groups",
    params(("groupJid" = String, Path), SessionQuery),
    responses((status = 200, body = GroupView), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn get_group(
    State(app): State<AppState>,
    caller: Caller,
    Path(jid): Path<String>,
    query: QueryPairs,
) -> ApiResult<Json<GroupView>> {
    Ok(Json(GroupView::from(
        &one_group(&app, &caller, &jid, &query).await?,
    )))
}

/// GET /api/groups/{groupJid}/metadata — the group's metadata (as `GET /api/groups/{groupJid}`).
#[utoipa::path(get, path = "/api/groups/{groupJid}/metadata", tag = "groups",
    params(("groupJid" = String, Path), SessionQuery),
    responses((status = 200, body = GroupView), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn get_group_metadata(
    State(app): State<AppState>,
    caller: Caller,
    Path(jid): Path<String>,
    query: QueryPairs,
) -> ApiResult<Json<GroupView>> {
    Ok(Json(GroupView::from(
        &one_group(&app, &caller, &jid, &query).await?,
    )))
}

/// GET /api/groups/{groupJid}/participants — the group's participants and their roles.
#[utoipa::path(get, path = "/api/groups/{groupJid}/participants", tag = "groups",
    params(("groupJid" = String, Path), SessionQuery),
    responses((status = 200, body = ParticipantListView), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn list_participants(
    State(app): State<AppState>,
    caller: Caller,
    Path(jid): Path<String>,
    query: QueryPairs,
) -> ApiResult<Json<ParticipantListView>> {
    let group = one_group(&app, &caller, &jid, &query).await?;
    Ok(Json(ParticipantListView {
        group_jid: group.jid.to_string(),
        data: group.participants,
    }))
}

async fn act_on_participants(
    app: AppState,
    caller: Caller,
    jid: String,
    query: QueryPairs,
    body: ParticipantsBody,
    action: ParticipantAction,
) -> ApiResult<Json<ParticipantResultsView>> {
    let session = session_param(&query, &[])?;
    let group = group_param(&jid)?;
    let participants = people(&body.participants)?;
    let results = app
        .services
        .social
        .participants(&caller, session, &group, action, participants)
        .await?;
    Ok(Json(ParticipantResultsView {
        group_jid: group.to_string(),
        action: action.as_str().to_owned(),
        results,
    }))
}

/// POST /api/groups/{groupJid}/participants — adds participants (admins only); each gets an
/// outcome (`added`, `already_in_group`, `not_on_whatsapp`, `privacy_restricted`).
#[utoipa::path(post, path = "/api/groups/{groupJid}/participants", tag = "groups",
    params(("groupJid" = String, Path), SessionQuery), request_body = ParticipantsBody,
    responses((status = 200, body = ParticipantResultsView), (status = 403, body = ErrorBody, description = "The session is not an admin."),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn add_participants(
    State(app): State<AppState>,
    caller: Caller,
    Path(jid): Path<String>,
    query: QueryPairs,
    ApiJson(body): ApiJson<ParticipantsBody>,
) -> ApiResult<Json<ParticipantResultsView>> {
    act_on_participants(app, caller, jid, query, body, ParticipantAction::Add).await
}

/// DELETE /api/groups/{groupJid}/participants — removes participants (admins only).
#[utoipa::path(delete, path = "/api/groups/{groupJid}/participants", tag = "groups",
    params(("groupJid" = String, Path), SessionQuery), request_body = ParticipantsBody,
    responses((status = 200, body = ParticipantResultsView), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn remove_participants(
    State(app): State<AppState>,
    caller: Caller,
    Path(jid): Path<String>,
    query: QueryPairs,
    ApiJson(body): ApiJson<ParticipantsBody>,
) -> ApiResult<Json<ParticipantResultsView>> {
    act_on_participants(app, caller, jid, query, body, ParticipantAction::Remove).await
}

/// POST /api/groups/{groupJid}/participants/add — as `POST …/participants` (the SDK's path).
#[utoipa::path(post, path = "/api/groups/{groupJid}/participants/add", tag = "groups",
    params(("groupJid" = String, Path), SessionQuery), request_body = ParticipantsBody,
    responses((status = 200, body = ParticipantResultsView), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn add_participants_sdk(
    State(app): State<AppState>,
    caller: Caller,
    Path(jid): Path<String>,
    query: QueryPairs,
    ApiJson(body): ApiJson<ParticipantsBody>,
) -> ApiResult<Json<ParticipantResultsView>> {
    act_on_participants(app, caller, jid, query, body, ParticipantAction::Add).await
}

/// POST /api/groups/{groupJid}/participants/remove — as `DELETE …/participants` (the SDK's
/// path).
#[utoipa::path(post, path = "/api/groups/{groupJid}/participants/remove", tag = "groups",
    params(("groupJid" = String, Path), SessionQuery), request_body = ParticipantsBody,
    responses((status = 200, body = ParticipantResultsView), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn remove_participants_sdk(
    State(app): State<AppState>,
    caller: Caller,
    Path(jid): Path<String>,
    query: QueryPairs,
    ApiJson(body): ApiJson<ParticipantsBody>,
) -> ApiResult<Json<ParticipantResultsView>> {
    act_on_participants(app, caller, jid, query, body, ParticipantAction::Remove).await
}

/// POST /api/groups/{groupJid}/participants/promote — makes participants admins.
#[utoipa::path(post, path = "/api/groups/{groupJid}/participants/promote", tag = "groups",
    params(("groupJid" = String, Path), SessionQuery), request_body = ParticipantsBody,
    responses((status = 200, body = ParticipantResultsView), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn promote_participants(
    State(app): State<AppState>,
    caller: Caller,
    Path(jid): Path<String>,
    query: QueryPairs,
    ApiJson(body): ApiJson<ParticipantsBody>,
) -> ApiResult<Json<ParticipantResultsView>> {
    act_on_participants(app, caller, jid, query, body, ParticipantAction::Promote).await
}

/// POST /api/groups/{groupJid}/participants/demote — makes admins plain members.
#[utoipa::path(post, path = "/api/groups/{groupJid}/participants/demote", tag = "groups",
    params(("groupJid" = String, Path), SessionQuery), request_body = ParticipantsBody,
    responses((status = 200, body = ParticipantResultsView), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn demote_participants(
    State(app): State<AppState>,
    caller: Caller,
    Path(jid): Path<String>,
    query: QueryPairs,
    ApiJson(body): ApiJson<ParticipantsBody>,
) -> ApiResult<Json<ParticipantResultsView>> {
    act_on_participants(app, caller, jid, query, body, ParticipantAction::Demote).await
}

/// The settings of a `PUT …/settings` body, in their order; an unknown key is refused by name.
fn parse_settings(body: &[u8]) -> ApiResult<Vec<GroupChange>> {
    let fields: serde_json::Map<String, Value> = parse_json(body)?;
    let boolean = |key: &str, v: &Value| {
        v.as_bool()
            .ok_or_else(|| ApiError::invalid(key, "must be true or false"))
    };
    let mut changes = Vec::new();
    for (key, value) in &fields {
        let change = match key.as_str() {
            "subject" => GroupChange::Subject(
                value
                    .as_str()
                    .ok_or_else(|| ApiError::invalid(key, "must be a string"))?
                    .to_owned(),
            ),
            "description" => GroupChange::Description(match value {
                Value::Null => None,
                Value::String(s) if s.is_empty() => None,
                Value::String(s) => Some(s.clone()),
                _ => return Err(ApiError::invalid(key, "must be a string or null")),
            }),
            "announce" => GroupChange::Announce(boolean(key, value)?),
            "locked" => GroupChange::Locked(boolean(key, value)?),
            "join_approval" => GroupChange::JoinApproval(boolean(key, value)?),
            "ephemeral_seconds" => GroupChange::Ephemeral(
                value
                    .as_u64()
                    .and_then(|v| u32::try_from(v).ok())
                    .ok_or_else(|| ApiError::invalid(key, "must be a whole number of seconds"))?,
            ),
            _ => {
                return Err(ApiError::invalid(
                    key,
                    "unknown setting; expected subject, description, announce, locked, ephemeral_seconds or join_approval",
                ));
            }
        };
        changes.push(change);
    }
    Ok(changes)
}

/// PUT /api/groups/{groupJid}/settings — changes the subject, description, announce-only,
/// locked, disappearing timer or join approval (an unknown key is a 422 naming it).
#[utoipa::path(put, path = "/api/groups/{groupJid}/settings", tag = "groups",
    params(("groupJid" = String, Path), SessionQuery), request_body = GroupSettingsBody,
    responses((status = 200, body = GroupView), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn update_settings(
    State(app): State<AppState>,
    caller: Caller,
    Path(jid): Path<String>,
    query: QueryPairs,
    JsonBytes(body): JsonBytes,
) -> ApiResult<Json<GroupView>> {
    let session = session_param(&query, &[])?;
    let group = group_param(&jid)?;
    let changes = parse_settings(&body)?;
    let info = app
        .services
        .social
        .update_group(&caller, session, &group, changes)
        .await?;
    Ok(Json(GroupView::from(&info)))
}

/// GET /api/groups/{groupJid}/picture — the group's picture URL; 404 when it has none.
#[utoipa::path(get, path = "/api/groups/{groupJid}/picture", tag = "groups",
    params(("groupJid" = String, Path), SessionQuery),
    responses((status = 200, body = super::contacts::PictureView), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn get_group_picture(
    State(app): State<AppState>,
    caller: Caller,
    Path(jid): Path<String>,
    query: QueryPairs,
) -> ApiResult<Json<super::contacts::PictureView>> {
    let session = session_param(&query, &[])?;
    let group = group_param(&jid)?;
    let url = app
        .services
        .social
        .picture(&caller, session, &group)
        .await?;
    Ok(Json(super::contacts::PictureView {
        jid: group.to_string(),
        url,
    }))
}

async fn invite_link(
    app: AppState,
    caller: Caller,
    jid: String,
    query: QueryPairs,
    reset: bool,
) -> ApiResult<Json<InviteLinkView>> {
    let session = session_param(&query, &[])?;
    let group = group_param(&jid)?;
    let invite = app
        .services
        .social
        .invite(&caller, session, &group, reset)
        .await?;
    Ok(Json(InviteLinkView {
        group_jid: invite.group.to_string(),
        invite_link: format!("https://chat.whatsapp.com/{}", invite.code),
        invite_code: invite.code,
    }))
}

/// GET /api/groups/{groupJid}/invite-link — the group's invite link (admins only).
#[utoipa::path(get, path = "/api/groups/{groupJid}/invite-link", tag = "groups",
    params(("groupJid" = String, Path), SessionQuery),
    responses((status = 200, body = InviteLinkView), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn get_invite_link(
    State(app): State<AppState>,
    caller: Caller,
    Path(jid): Path<String>,
    query: QueryPairs,
) -> ApiResult<Json<InviteLinkView>> {
    invite_link(app, caller, jid, query, false).await
}

/// POST /api/groups/{groupJid}/invite-link/reset — revokes the invite link and makes a new
/// one (admins only).
#[utoipa::path(post, path = "/api/groups/{groupJid}/invite-link/reset", tag = "groups",
    params(("groupJid" = String, Path), SessionQuery),
    responses((status = 200, body = InviteLinkView), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn reset_invite_link(
    State(app): State<AppState>,
    caller: Caller,
    Path(jid): Path<String>,
    query: QueryPairs,
) -> ApiResult<Json<InviteLinkView>> {
    invite_link(app, caller, jid, query, true).await
}

/// POST /api/groups/{groupJid}/leave — the session leaves the group.
#[utoipa::path(post, path = "/api/groups/{groupJid}/leave", tag = "groups",
    params(("groupJid" = String, Path), SessionQuery),
    responses((status = 200, body = LeftGroupView), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn leave_group(
    State(app): State<AppState>,
    caller: Caller,
    Path(jid): Path<String>,
    query: QueryPairs,
) -> ApiResult<Json<LeftGroupView>> {
    let session = session_param(&query, &[])?;
    let group = group_param(&jid)?;
    app.services.social.leave(&caller, session, &group).await?;
    Ok(Json(LeftGroupView {
        group_jid: group.to_string(),
        left: true,
    }))
}

/// GET /api/groups/invite/{inviteCode} — what an invite code leads to, without joining.
#[utoipa::path(get, path = "/api/groups/invite/{inviteCode}", tag = "groups",
    params(("inviteCode" = String, Path), SessionQuery),
    responses((status = 200, body = InvitePreviewView), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn resolve_invite(
    State(app): State<AppState>,
    caller: Caller,
    Path(code): Path<String>,
    query: QueryPairs,
) -> ApiResult<Json<InvitePreviewView>> {
    let session = session_param(&query, &[])?;
    let preview = app
        .services
        .social
        .resolve_invite(&caller, session, &code)
        .await?;
    Ok(Json(InvitePreviewView {
        group_jid: preview.jid.to_string(),
        subject: preview.subject,
        description: preview.description,
        size: preview.size,
    }))
}

/// POST /api/groups/invite/accept — joins the group of an invite code; answers the group.
#[utoipa::path(post, path = "/api/groups/invite/accept", tag = "groups", params(SessionQuery),
    request_body = AcceptInviteBody,
    responses((status = 200, body = GroupView), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "Already a member, or the group needs approval."),
        (status = 422, body = ErrorBody)))]
async fn accept_invite(
    State(app): State<AppState>,
    caller: Caller,
    query: QueryPairs,
    ApiJson(body): ApiJson<AcceptInviteBody>,
) -> ApiResult<Json<GroupView>> {
    let session = session_param(&query, &[])?;
    let group = app
        .services
        .social
        .accept_invite(&caller, session, &body.invite_code)
        .await?;
    Ok(Json(GroupView::from(&group)))
}
