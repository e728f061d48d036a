//! Channels (newsletters) a session follows: list, metadata, follow, unfollow. Posting into a
//! channel is `/api/send-message` with `channel_id`. The session is chosen as for contacts.

use axum::{
    Json,
    extract::{Path, State},
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use wharf_core::{Jid, jid::JidServer, social::ChannelInfo};

use super::contacts::{SessionQuery, session_param};
use crate::{
    http::{
        AppState,
        error::{ApiError, ErrorBody},
        extract::QueryPairs,
    },
    services::Caller,
};

type ApiResult<T> = Result<T, ApiError>;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_channels))
        .routes(routes!(get_channel))
        .routes(routes!(follow_channel))
        .routes(routes!(unfollow_channel))
}

fn channel_param(raw: &str) -> ApiResult<Jid> {
    match Jid::parse(raw) {
        Ok(jid) if jid.server() == JidServer::Newsletter => Ok(jid),
        _ => Err(ApiError::invalid(
            "channelJid",
            "must be a channel JID ending in @newsletter",
        )),
    }
}

/// A channel.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChannelView {
    pub jid: String,
    pub name: String,
    pub description: Option<String>,
    pub followers: u64,
    /// The session follows it.
    pub following: bool,
    /// The session owns it (and may post in it).
    pub owner: bool,
}

impl From<&ChannelInfo> for ChannelView {
    fn from(c: &ChannelInfo) -> Self {
        Self {
            jid: c.jid.to_string(),
            name: c.name.clone(),
            description: c.description.clone(),
            followers: c.followers,
            following: c.following,
            owner: c.owner,
        }
    }
}

/// The channels a session follows or owns.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChannelListView {
    pub data: Vec<ChannelView>,
}

/// GET /api/channels — the channels the session follows or owns.
#[utoipa::path(get, path = "/api/channels", tag = "channels", params(SessionQuery),
    responses((status = 200, body = ChannelListView), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn list_channels(
    State(app): State<AppState>,
    caller: Caller,
    query: QueryPairs,
) -> ApiResult<Json<ChannelListView>> {
    let session = session_param(&query, &[])?;
    let channels = app.services.social.channels(&caller, session).await?;
    Ok(Json(ChannelListView {
        data: channels.iter().map(ChannelView::from).collect(),
    }))
}

/// GET /api/channels/{channelJid} — a channel's metadata.
#[utoipa::path(get, path = "/api/channels/{channelJid}", tag = "channels",
    params(("channelJid" = String, Path), SessionQuery),
    responses((status = 200, body = ChannelView), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn get_channel(
    State(app): State<AppState>,
    caller: Caller,
    Path(jid): Path<String>,
    query: QueryPairs,
) -> ApiResult<Json<ChannelView>> {
    let session = session_param(&query, &[])?;
    let channel = channel_param(&jid)?;
    let info = app
        .services
        .social
        .channel(&caller, session, &channel)
        .await?;
    Ok(Json(ChannelView::from(&info)))
}

async fn follow(
    app: AppState,
    caller: Caller,
    jid: String,
    query: QueryPairs,
    on: bool,
) -> ApiResult<Json<ChannelView>> {
    let session = session_param(&query, &[])?;
    let channel = channel_param(&jid)?;
    let info = app
        .services
        .social
        .follow(&caller, session, &channel, on)
        .await?;
    Ok(Json(ChannelView::from(&info)))
}

/// POST /api/channels/{channelJid}/follow — follows a channel; its posts then arrive as
/// `message.received` in the channel's chat.
#[utoipa::path(post, path = "/api/channels/{channelJid}/follow", tag = "channels",
    params(("channelJid" = String, Path), SessionQuery),
    responses((status = 200, body = ChannelView), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn follow_channel(
    State(app): State<AppState>,
    caller: Caller,
    Path(jid): Path<String>,
    query: QueryPairs,
) -> ApiResult<Json<ChannelView>> {
    follow(app, caller, jid, query, true).await
}

/// POST /api/channels/{channelJid}/unfollow — stops following a channel.
#[utoipa::path(post, path = "/api/channels/{channelJid}/unfollow", tag = "channels",
    params(("channelJid" = String, Path), SessionQuery),
    responses((status = 200, body = ChannelView), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn unfollow_channel(
    State(app): State<AppState>,
    caller: Caller,
    Path(jid): Path<String>,
    query: QueryPairs,
) -> ApiResult<Json<ChannelView>> {
    follow(app, caller, jid, query, false).await
}
