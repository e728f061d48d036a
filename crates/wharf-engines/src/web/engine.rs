//! The web engine's side of the `Engine` contract: lifecycle, sends, actions, presence,
//! contacts, groups and channels, each mapped onto the session's port.

use super::*;

/// The read receipts for `ids` in `chat`: one for a direct chat; in a group, one per
/// participant who wrote them (WhatsApp Web names the participant in a group's receipt).
fn read_marks(
    chat: &Jid,
    ids: &[ProviderId],
    senders: &[Option<Jid>],
) -> Result<Vec<PortAction>, EngineError> {
    if chat.server() != JidServer::Group {
        return Ok(vec![PortAction::MarkRead {
            chat: chat.clone(),
            sender: None,
            ids: ids.iter().map(ToString::to_string).collect(),
        }]);
    }
    let mut by_sender: Vec<(Jid, Vec<String>)> = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        let Some(sender) = senders.get(i).cloned().flatten() else {
            return Err(EngineError::Permanent(format!(
                "read receipts in groups need the sender of each message; {id} has none"
            )));
        };
        match by_sender.iter_mut().find(|(s, _)| *s == sender) {
            Some((_, list)) => list.push(id.to_string()),
            None => by_sender.push((sender, vec![id.to_string()])),
        }
    }
    Ok(by_sender
        .into_iter()
        .map(|(sender, ids)| PortAction::MarkRead {
            chat: chat.clone(),
            sender: Some(sender),
            ids,
        })
        .collect())
}

#[async_trait]
impl Engine for WebEngine {
    fn kind(&self) -> EngineKind {
        EngineKind::Web
    }

    fn capabilities(&self) -> Capabilities {
        if self.inner.media.get().is_some() {
            WEB_MEDIA_CAPABILITIES
        } else {
            WEB_CAPABILITIES
        }
    }

    fn refusal(
        &self,
        content: &wharf_core::message::Content,
        to: &Jid,
        quoted: bool,
    ) -> Option<String> {
        self.capabilities()
            .refusal(content, to, quoted)
            .or_else(|| {
                (to.server() == JidServer::Newsletter && content.kind() != MessageKind::Text)
                    .then(|| format!("{} posts in channels (text only)", content.kind().as_str()))
            })
    }

    async fn start(&self, session: &EngineSession) -> Result<(), EngineError> {
        let inner = &self.inner;
        let mut sessions = inner.sessions.lock().unwrap();
        if let Some(running) = sessions.get(&session.id)
            && !matches!(running.status, WebStatus::Ended { .. })
        {
            return Ok(());
        }
        let (stop, stop_rx) = watch::channel(false);
        let pacing = inner
            .pacing
            .lock()
            .unwrap()
            .get(&session.id)
            .copied()
            .unwrap_or(inner.config.pacing);
        let task = tokio::spawn(supervise(inner.clone(), session.clone(), stop_rx));
        sessions.insert(
            session.id,
            Running {
                port: None,
                status: WebStatus::Connecting {
                    reason: "starting".into(),
                },
                qr: None,
                stop,
                task: Some(task),
                pacing,
                logging_out: false,
            },
        );
        Ok(())
    }

    async fn stop(&self, session: SessionId) -> Result<(), EngineError> {
        let running = self.inner.sessions.lock().unwrap().remove(&session);
        let Some(mut running) = running else {
            return Ok(());
        };
        let _ = running.stop.send(true);
        if let Some(mut task) = running.task.take() {
            let limit = self.inner.config.stop_timeout + Duration::from_secs(1);
            if tokio::time::timeout(limit, &mut task).await.is_err() {
                tracing::warn!(%session, "the web session did not stop in time; abandoned");
                task.abort();
            }
        }
        Ok(())
    }

    async fn logout(&self, session: SessionId) -> Result<(), EngineError> {
        let port = self
            .inner
            .with(session, |r| {
                r.logging_out = true;
                r.port.clone()
            })
            .flatten();
        if let Some(port) = port {
            let limit = self.inner.config.stop_timeout;
            if tokio::time::timeout(limit, port.logout()).await.is_err() {
                tracing::warn!(%session, "logging the web device out timed out");
            }
        }
        self.stop(session).await?;
        self.inner
            .book
            .forget(session)
            .await
            .map_err(|e| EngineError::Transient(format!("wiping the address book: {e}")))?;
        self.inner
            .factory
            .forget(session)
            .await
            .map_err(|e| EngineError::Transient(format!("wiping the linked device: {e}")))
    }

    async fn send(
        &self,
        session: SessionId,
        message: &Outbound,
    ) -> Result<ProviderId, EngineError> {
        let id = message.provider_id.clone().ok_or_else(|| {
            EngineError::Permanent(
                "the web engine needs the message id fixed before sending".into(),
            )
        })?;
        let port = self.port(session)?;
        let out = PortMessage {
            id: id.to_string(),
            to: message.to.clone(),
            content: message.content.clone(),
            quoted_id: message.quoted_provider_id.as_ref().map(ToString::to_string),
        };
        if matches!(out.content, Content::Media { .. }) {
            let fetch = self.inner.media.get().ok_or_else(|| {
                EngineError::Permanent("this server cannot fetch media for the web engine".into())
            })?;
            media::send(
                fetch.as_ref(),
                self.inner.config.media_max_bytes,
                port.as_ref(),
                &out,
            )
            .await?;
            return Ok(id);
        }
        port.send(&out).await.map_err(map_port_error)?;
        Ok(id)
    }

    async fn act(&self, session: SessionId, action: &MessageAction) -> Result<(), EngineError> {
        let port = self.port(session)?;
        let action = match action {
            MessageAction::Edit {
                chat,
                provider_id,
                text,
            } => PortAction::Edit {
                chat: chat.clone(),
                target_id: provider_id.to_string(),
                text: text.clone(),
            },
            MessageAction::Revoke { chat, provider_id } => PortAction::Revoke {
                chat: chat.clone(),
                target_id: provider_id.to_string(),
            },
            MessageAction::MarkRead {
                chat,
                provider_ids,
                senders,
            } => {
                for action in read_marks(chat, provider_ids, senders)? {
                    port.act(&action).await.map_err(map_port_error)?;
                }
                return Ok(());
            }
        };
        port.act(&action).await.map_err(map_port_error)
    }

    async fn presence(
        &self,
        session: SessionId,
        to: Option<&Jid>,
        presence: Presence,
    ) -> Result<(), EngineError> {
        let port = self.port(session)?;
        port.presence(to, presence).await.map_err(map_port_error)
    }

    fn social(&self) -> SocialCapabilities {
        WEB_SOCIAL
    }

    async fn on_whatsapp(
        &self,
        session: SessionId,
        phone: &Phone,
    ) -> Result<Registration, EngineError> {
        self.on_port(session, |p| async move { p.on_whatsapp(phone).await })
            .await
    }

    async fn contacts(&self, session: SessionId) -> Result<Vec<EngineContact>, EngineError> {
        self.address_book(session).await
    }

    async fn blocklist(&self, session: SessionId) -> Result<Vec<Jid>, EngineError> {
        self.on_port(session, |p| async move { p.blocklist().await })
            .await
    }

    async fn set_blocked(
        &self,
        session: SessionId,
        jid: &Jid,
        blocked: bool,
    ) -> Result<(), EngineError> {
        self.on_port(
            session,
            |p| async move { p.set_blocked(jid, blocked).await },
        )
        .await
    }

    async fn picture(&self, session: SessionId, jid: &Jid) -> Result<Option<String>, EngineError> {
        self.on_port(session, |p| async move { p.picture(jid).await })
            .await
    }

    async fn groups(&self, session: SessionId) -> Result<Vec<GroupInfo>, EngineError> {
        self.on_port(session, |p| async move { p.groups().await })
            .await
    }

    async fn group(
        &self,
        session: SessionId,
        group: &Jid,
    ) -> Result<Option<GroupInfo>, EngineError> {
        self.on_port(session, |p| async move { p.group(group).await })
            .await
    }

    async fn create_group(
        &self,
        session: SessionId,
        subject: &str,
        participants: &[Jid],
    ) -> Result<(GroupInfo, Vec<ParticipantResult>), EngineError> {
        self.on_port(session, |p| async move {
            p.create_group(subject, participants).await
        })
        .await
    }

    async fn update_participants(
        &self,
        session: SessionId,
        group: &Jid,
        action: ParticipantAction,
        participants: &[Jid],
    ) -> Result<Vec<ParticipantResult>, EngineError> {
        self.on_port(session, |p| async move {
            p.update_participants(group, action, participants).await
        })
        .await
    }

    async fn update_group(
        &self,
        session: SessionId,
        group: &Jid,
        changes: &[GroupChange],
    ) -> Result<GroupInfo, EngineError> {
        self.change_group(session, group, changes).await
    }

    async fn invite_code(
        &self,
        session: SessionId,
        group: &Jid,
        reset: bool,
    ) -> Result<String, EngineError> {
        self.on_port(
            session,
            |p| async move { p.invite_code(group, reset).await },
        )
        .await
    }

    async fn leave_group(&self, session: SessionId, group: &Jid) -> Result<(), EngineError> {
        self.on_port(session, |p| async move { p.leave_group(group).await })
            .await
    }

    async fn resolve_invite(
        &self,
        session: SessionId,
        code: &str,
    ) -> Result<Option<InvitePreview>, EngineError> {
        self.on_port(session, |p| async move { p.resolve_invite(code).await })
            .await
    }

    async fn accept_invite(
        &self,
        session: SessionId,
        code: &str,
    ) -> Result<Option<Jid>, EngineError> {
        self.join(session, code).await
    }

    async fn follow_channel(
        &self,
        session: SessionId,
        channel: &Jid,
        follow: bool,
    ) -> Result<bool, EngineError> {
        self.on_port(session, |p| async move {
            p.follow_channel(channel, follow).await
        })
        .await
    }

    async fn channels(&self, session: SessionId) -> Result<Vec<ChannelInfo>, EngineError> {
        self.on_port(session, |p| async move { p.channels().await })
            .await
    }

    async fn channel(
        &self,
        session: SessionId,
        channel: &Jid,
    ) -> Result<Option<ChannelInfo>, EngineError> {
        self.on_port(session, |p| async move { p.channel(channel).await })
            .await
    }

    async fn user(&self, session: SessionId) -> Result<UserInfo, EngineError> {
        self.on_port(session, |p| async move { p.user().await })
            .await
    }

    async fn decrypt_media(
        &self,
        session: SessionId,
        reference: &serde_json::Value,
    ) -> Result<(Vec<u8>, String), EngineError> {
        let (media, mime) = media::decode_reference(reference).map_err(|why| {
            EngineError::Permanent(format!("not a usable media reference: {why}"))
        })?;
        // The file is held in memory to be decrypted: the sender chooses its size.
        let limit = self.inner.config.media_max_bytes;
        if media.file_length > limit {
            return Err(EngineError::Permanent(format!(
                "the file is {} bytes, over the {limit} bytes Wharf downloads",
                media.file_length
            )));
        }
        let port = self.port(session)?;
        let bytes = port.download(&media).await.map_err(map_port_error)?;
        let mime = mime.unwrap_or_else(|| media::default_mime(media.kind).to_owned());
        Ok((bytes, mime))
    }

    fn pacing(&self, session: SessionId) -> Option<Pacing> {
        Some(
            self.inner
                .with(session, |r| r.pacing)
                .or_else(|| self.inner.pacing.lock().unwrap().get(&session).copied())
                .unwrap_or(self.inner.config.pacing),
        )
    }
}
