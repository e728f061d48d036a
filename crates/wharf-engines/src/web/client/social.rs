//! The contacts, groups and channels of the real port, over whatsapp-rust's features
//! (usync, blocklist, profile pictures, `w:g2` groups, newsletters).

use std::time::Duration;

use async_trait::async_trait;
use wharf_core::{
    Jid, Phone,
    social::{
        ChannelInfo, GroupChange, GroupInfo, InvitePreview, ParticipantAction, ParticipantOutcome,
        ParticipantResult, Registration, UserInfo,
    },
};
use whatsapp_rust::{
    BlockingError, ContactError, GroupDescription, GroupError, GroupJoinError, GroupSubject,
    IqError, Jid as WaJid, JoinGroupResult, MembershipApprovalMode, MexError, NewsletterError,
    PreviousDescription,
};

use super::{WhatsAppPort, jid};
use crate::web::{
    convert::{
        from_wa_jid,
        social::{channel_info, group_info, identity, participant_result},
    },
    port::{JoinAnswer, PortError, SocialPort},
};

/// Maps a failed IQ: transport gone → not connected; a server-directed backoff or 429 →
/// throttled; 401/403 (not allowed for this account) → conflict; 5xx → transient.
pub fn map_iq_error(e: IqError) -> PortError {
    match e {
        IqError::NotConnected | IqError::Disconnected(_) | IqError::InternalChannelClosed => {
            PortError::NotConnected
        }
        IqError::Socket(_) | IqError::ClientState(_) => PortError::NotConnected,
        IqError::ServerError {
            code,
            text,
            backoff,
            ..
        } => {
            let reason = format!("WhatsApp answered {code} {text}");
            match (code, backoff) {
                (_, Some(secs)) => PortError::Throttled {
                    reason,
                    after: Duration::from_secs(secs.into()),
                },
                (429, None) => PortError::Throttled {
                    reason,
                    after: Duration::from_secs(60),
                },
                (401 | 403, None) => PortError::Conflict(format!(
                    "WhatsApp refused: the session may not do this ({code} {text})"
                )),
                (500.., None) => PortError::Transient(reason),
                _ => PortError::Rejected(reason),
            }
        }
        other => PortError::Transient(other.to_string()),
    }
}

/// The server's error code of an IQ failure, when it answered one.
fn server_code(e: &IqError) -> Option<u16> {
    match e {
        IqError::ServerError { code, .. } => Some(*code),
        _ => None,
    }
}

fn map_group_error(e: GroupError) -> PortError {
    match e {
        GroupError::Iq(e) => map_iq_error(e),
        GroupError::Mex(MexError::Request(e)) => map_iq_error(e),
        GroupError::InvalidRequest(why) => PortError::Rejected(why),
        GroupError::DescriptionConflict => PortError::Conflict(
            "the group description changed meanwhile; read the group and try again".into(),
        ),
        other => PortError::Transient(other.to_string()),
    }
}

fn map_contact_error(e: ContactError) -> PortError {
    match e {
        ContactError::Iq(e) => map_iq_error(e),
        ContactError::InvalidJid(why) => PortError::Rejected(why),
        other => PortError::Transient(other.to_string()),
    }
}

fn map_newsletter_error(e: NewsletterError) -> PortError {
    match e {
        NewsletterError::Iq(e) | NewsletterError::Mex(MexError::Request(e)) => map_iq_error(e),
        NewsletterError::InvalidRequest(why) => PortError::Rejected(why),
        other => PortError::Transient(other.to_string()),
    }
}

fn is_missing_newsletter(e: &NewsletterError) -> bool {
    match e {
        NewsletterError::InvalidRequest(why) => why.contains("not found"),
        NewsletterError::Mex(MexError::ExtensionError { code, .. }) => *code == 404,
        NewsletterError::Iq(e) | NewsletterError::Mex(MexError::Request(e)) => {
            server_code(e) == Some(404)
        }
        _ => false,
    }
}

fn wa_pn(phone: &Phone) -> WaJid {
    WaJid::pn(phone.digits())
}

impl WhatsAppPort {
    /// A JID as the phone JID when the crate knows the number behind a LID.
    async fn person(&self, jid: &WaJid) -> Option<Jid> {
        if jid.is_lid()
            && let Ok(Some(entry)) = self.client.get_lid_pn_entry(jid).await
        {
            return from_wa_jid(&WaJid::pn(&*entry.phone_number));
        }
        from_wa_jid(jid)
    }

    async fn metadata(&self, group: &Jid) -> Result<Option<GroupInfo>, PortError> {
        match self.client.groups().get_metadata(&jid(group)?).await {
            Ok(meta) => Ok(group_info(&meta)),
            // Not a participant (or no such group): WhatsApp answers 401/403/404.
            Err(GroupError::Iq(e)) if matches!(server_code(&e), Some(401 | 403 | 404)) => Ok(None),
            Err(e) => Err(map_group_error(e)),
        }
    }

    async fn registered(&self, jids: &[WaJid]) -> Result<Vec<WaJid>, PortError> {
        let answers = self
            .client
            .contacts()
            .is_on_whatsapp(jids)
            .await
            .map_err(map_contact_error)?;
        Ok(answers
            .into_iter()
            .filter(|a| a.is_registered)
            .map(|a| match a.pn_jid {
                Some(pn) if a.jid.is_lid() => pn,
                _ => a.jid,
            })
            .collect())
    }
}

#[async_trait]
impl SocialPort for WhatsAppPort {
    async fn on_whatsapp(&self, phone: &Phone) -> Result<Registration, PortError> {
        let answers = self
            .client
            .contacts()
            .is_on_whatsapp(&[wa_pn(phone)])
            .await
            .map_err(map_contact_error)?;
        let Some(answer) = answers.into_iter().find(|a| a.is_registered) else {
            return Ok(Registration {
                exists: false,
                jid: None,
                lid: None,
            });
        };
        let (pn, lid) = if answer.jid.is_lid() {
            (answer.pn_jid, Some(answer.jid))
        } else {
            (Some(answer.jid), answer.lid)
        };
        Ok(Registration {
            exists: true,
            jid: pn
                .as_ref()
                .and_then(from_wa_jid)
                .or_else(|| Some(Jid::from_phone(phone))),
            lid: lid.as_ref().and_then(from_wa_jid),
        })
    }

    async fn blocklist(&self) -> Result<Vec<Jid>, PortError> {
        let entries = self
            .client
            .blocking()
            .get_blocklist()
            .await
            .map_err(|e| match e {
                BlockingError::Iq(e) => map_iq_error(e),
                other => PortError::Transient(other.to_string()),
            })?;
        let mut out = Vec::with_capacity(entries.len());
        for e in entries {
            if let Some(j) = self.person(&e.jid).await {
                out.push(j);
            }
        }
        Ok(out)
    }

    async fn set_blocked(&self, target: &Jid, blocked: bool) -> Result<(), PortError> {
        let wa = jid(target)?;
        let act = || async {
            let blocking = self.client.blocking();
            if blocked {
                blocking.block(&wa).await
            } else {
                blocking.unblock(&wa).await
            }
        };
        let answer = match act().await {
            // WhatsApp blocks by LID: learn the number's LID (usync) and try once more.
            Err(BlockingError::InvalidJid(_)) if wa.is_pn() => {
                if self.registered(std::slice::from_ref(&wa)).await?.is_empty() {
                    return Err(PortError::Rejected(format!("{target} is not on WhatsApp")));
                }
                act().await
            }
            other => other,
        };
        answer.map_err(|e| match e {
            BlockingError::Iq(e) => map_iq_error(e),
            BlockingError::InvalidJid(why) => PortError::Rejected(why),
            other => PortError::Transient(other.to_string()),
        })
    }

    async fn picture(&self, target: &Jid) -> Result<Option<String>, PortError> {
        let pic = self
            .client
            .contacts()
            .get_profile_picture(&jid(target)?, false)
            .await
            .map_err(map_contact_error)?;
        Ok(pic.map(|p| p.url).filter(|u| !u.is_empty()))
    }

    async fn groups(&self) -> Result<Vec<GroupInfo>, PortError> {
        let groups = self
            .client
            .groups()
            .get_participating()
            .await
            .map_err(map_group_error)?;
        let mut out: Vec<GroupInfo> = groups.values().filter_map(group_info).collect();
        out.sort_by_key(|g| g.jid.to_string());
        Ok(out)
    }

    async fn group(&self, group: &Jid) -> Result<Option<GroupInfo>, PortError> {
        self.metadata(group).await
    }

    async fn create_group(
        &self,
        subject: &str,
        participants: &[Jid],
    ) -> Result<(GroupInfo, Vec<ParticipantResult>), PortError> {
        let subject = GroupSubject::new(subject).map_err(|e| PortError::Rejected(e.to_string()))?;
        // The create answer lists refused participants as if they were members (the crate
        // drops their error codes), so numbers without WhatsApp are left out first and the
        // group is read back: whoever asked for is not in it was refused for privacy.
        let asked: Vec<WaJid> = participants.iter().map(jid).collect::<Result<_, _>>()?;
        let registered = if asked.is_empty() {
            Vec::new()
        } else {
            self.registered(&asked).await?
        };
        let options = whatsapp_rust::GroupCreateOptions::new(subject.into_string())
            .with_participants(
                registered
                    .iter()
                    .cloned()
                    .map(whatsapp_rust::GroupParticipantOptions::new)
                    .collect(),
            );
        let created = self
            .client
            .groups()
            .create_group(options)
            .await
            .map_err(map_group_error)?;
        let created_jid = from_wa_jid(&created.metadata.id)
            .ok_or_else(|| PortError::Transient("WhatsApp answered an unknown group JID".into()))?;
        let info = match self.metadata(&created_jid).await? {
            Some(info) => info,
            None => group_info(&created.metadata).ok_or_else(|| {
                PortError::Transient("WhatsApp answered an unknown group JID".into())
            })?,
        };
        let results = participants
            .iter()
            .zip(&asked)
            .map(|(p, wa)| {
                let outcome = if !registered.iter().any(|r| r.user == wa.user) {
                    ParticipantOutcome::NotOnWhatsapp
                } else if info.participants.iter().any(|m| &m.jid == p) {
                    ParticipantOutcome::Added
                } else {
                    ParticipantOutcome::PrivacyRestricted
                };
                ParticipantResult {
                    jid: p.clone(),
                    outcome,
                }
            })
            .collect();
        Ok((info, results))
    }

    async fn update_participants(
        &self,
        group: &Jid,
        action: ParticipantAction,
        participants: &[Jid],
    ) -> Result<Vec<ParticipantResult>, PortError> {
        let g = jid(group)?;
        let who: Vec<WaJid> = participants.iter().map(jid).collect::<Result<_, _>>()?;
        let groups = self.client.groups();
        let answers = match action {
            ParticipantAction::Add => groups.add_participants(g, &who).await,
            ParticipantAction::Remove => groups.remove_participants(g, &who).await,
            ParticipantAction::Promote => groups.promote_participants(g, &who).await,
            ParticipantAction::Demote => groups.demote_participants(g, &who).await,
        }
        .map_err(map_group_error)?;
        let answered: Vec<ParticipantResult> = answers
            .iter()
            .filter_map(|a| participant_result(action, a, participants))
            .collect();
        // One result per participant asked for, in the order asked.
        Ok(participants
            .iter()
            .map(|p| {
                answered
                    .iter()
                    .find(|r| &r.jid == p)
                    .cloned()
                    .unwrap_or(ParticipantResult {
                        jid: p.clone(),
                        outcome: ParticipantOutcome::NotAllowed,
                    })
            })
            .collect())
    }

    async fn update_group(&self, group: &Jid, change: &GroupChange) -> Result<(), PortError> {
        let g = jid(group)?;
        let groups = self.client.groups();
        let rejected = |e: whatsapp_rust::anyhow::Error| PortError::Rejected(e.to_string());
        let done = match change {
            GroupChange::Subject(s) => {
                groups
                    .set_subject(g, GroupSubject::new(s.as_str()).map_err(rejected)?)
                    .await
            }
            GroupChange::Description(d) => {
                let d = d
                    .as_deref()
                    .filter(|d| !d.is_empty())
                    .map(GroupDescription::new)
                    .transpose()
                    .map_err(rejected)?;
                groups
                    .set_description(g, d, PreviousDescription::Resolve)
                    .await
            }
            GroupChange::Announce(on) => groups.set_announce(g, *on).await,
            GroupChange::Locked(on) => groups.set_locked(g, *on).await,
            GroupChange::Ephemeral(secs) => groups.set_ephemeral(g, *secs).await,
            GroupChange::JoinApproval(on) => {
                let mode = if *on {
                    MembershipApprovalMode::On
                } else {
                    MembershipApprovalMode::Off
                };
                groups.set_membership_approval(g, mode).await
            }
        };
        done.map_err(map_group_error)
    }

    async fn invite_code(&self, group: &Jid, reset: bool) -> Result<String, PortError> {
        let link = self
            .client
            .groups()
            .get_invite_link(jid(group)?, reset)
            .await
            .map_err(map_group_error)?;
        Ok(link
            .trim_start_matches("https://chat.whatsapp.com/")
            .to_owned())
    }

    async fn leave_group(&self, group: &Jid) -> Result<(), PortError> {
        self.client
            .groups()
            .leave(jid(group)?)
            .await
            .map_err(map_group_error)
    }

    async fn resolve_invite(&self, code: &str) -> Result<Option<InvitePreview>, PortError> {
        match self.client.groups().get_invite_info(code).await {
            Ok(meta) => Ok(group_info(&meta).map(|info| InvitePreview {
                size: meta.size.map_or(info.participants.len(), |s| s as usize),
                jid: info.jid,
                subject: info.subject,
                description: info.description,
            })),
            // Unknown, reset or unusable codes.
            Err(GroupError::Iq(e)) if matches!(server_code(&e), Some(400 | 404 | 406 | 410)) => {
                Ok(None)
            }
            Err(e) => Err(map_group_error(e)),
        }
    }

    async fn accept_invite(&self, code: &str) -> Result<JoinAnswer, PortError> {
        match self.client.groups().join_with_invite_code(code).await {
            Ok(JoinGroupResult::Joined(g)) => Ok(from_wa_jid(&g)
                .map(JoinAnswer::Joined)
                .unwrap_or(JoinAnswer::Unknown)),
            Ok(JoinGroupResult::PendingApproval(g)) => Ok(JoinAnswer::Refused(format!(
                "the group {g} needs an admin's approval to join; WhatsApp sent a request"
            ))),
            Err(GroupError::Iq(e)) => match server_code(&e) {
                Some(400 | 404 | 410) => Ok(JoinAnswer::Unknown),
                Some(code @ (304 | 403 | 405 | 409 | 412 | 419 | 423)) => {
                    Ok(JoinAnswer::Refused(format!(
                        "WhatsApp refused to join: {}",
                        GroupJoinError::from_code(code)
                    )))
                }
                _ => Err(map_iq_error(e)),
            },
            Err(e) => Err(map_group_error(e)),
        }
    }

    async fn follow_channel(&self, channel: &Jid, follow: bool) -> Result<bool, PortError> {
        let wa = jid(channel)?;
        let newsletters = self.client.newsletter();
        match newsletters.get_metadata(&wa).await {
            Ok(_) => {}
            Err(e) if is_missing_newsletter(&e) => return Ok(false),
            Err(e) => return Err(map_newsletter_error(e)),
        }
        let done = if follow {
            newsletters.join(&wa).await.map(|_| ())
        } else {
            newsletters.leave(&wa).await
        };
        done.map_err(map_newsletter_error)?;
        Ok(true)
    }

    async fn channels(&self) -> Result<Vec<ChannelInfo>, PortError> {
        let list = self
            .client
            .newsletter()
            .list_subscribed()
            .await
            .map_err(map_newsletter_error)?;
        Ok(list.iter().filter_map(channel_info).collect())
    }

    async fn channel(&self, channel: &Jid) -> Result<Option<ChannelInfo>, PortError> {
        match self.client.newsletter().get_metadata(&jid(channel)?).await {
            Ok(meta) => Ok(channel_info(&meta)),
            Err(e) if is_missing_newsletter(&e) => Ok(None),
            Err(e) => Err(map_newsletter_error(e)),
        }
    }

    async fn user(&self) -> Result<UserInfo, PortError> {
        let pn = self.client.pn().ok_or(PortError::NotConnected)?;
        let me = identity(&pn, None).ok_or(PortError::NotConnected)?;
        let phone = me.phone().ok_or(PortError::NotConnected)?;
        let name = Some(self.client.push_name()).filter(|n| !n.trim().is_empty());
        let picture_url = self
            .client
            .contacts()
            .get_profile_picture(&pn.to_non_ad(), false)
            .await
            .map_err(map_contact_error)?
            .map(|p| p.url)
            .filter(|u| !u.is_empty());
        Ok(UserInfo {
            phone,
            jid: me,
            name,
            picture_url,
        })
    }
}
