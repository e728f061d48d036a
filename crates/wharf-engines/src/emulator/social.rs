//! The emulator's contacts, groups and channels: what each session's phone knows (its
//! address book, blocked contacts, who is not on WhatsApp or hides behind privacy settings)
//! and the shared [`World`] of groups and channels, with the control surface that sets it up.

use std::collections::{HashMap, HashSet};

use wharf_core::{
    EngineError, EngineUpdate, Jid, Phone, SessionId,
    jid::JidServer,
    message::{Content, Inbound, ProviderId},
    social::{
        ChannelInfo, EngineContact, GroupChange, GroupInfo, InvitePreview, ParticipantAction,
        ParticipantResult, Registration, UserInfo,
    },
    time::now_millis,
};

use super::{
    Emulator, Running,
    world::{Notices, Reach},
};

/// What the emulator knows of one contact, as a session's phone sees it; set through the
/// control surface.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContactSetup {
    /// `Some(false)`: the number has no WhatsApp account.
    pub on_whatsapp: Option<bool>,
    /// `Some(true)`: its privacy settings forbid adding it to groups.
    pub privacy_restricted: Option<bool>,
    /// A name saved in the phone's address book (`Some("")` removes it).
    pub name: Option<String>,
    /// Its profile picture (`Some("")`: none, or hidden from the session).
    pub picture_url: Option<String>,
}

/// The contact part of a session's emulated phone.
#[derive(Debug, Default)]
pub(crate) struct Book {
    pub privacy_restricted: HashSet<Phone>,
    pub names: HashMap<Jid, String>,
    pub pictures: HashMap<Jid, String>,
    pub blocked: HashSet<Jid>,
}

/// The LID WhatsApp would show for a number: stable, derived from it (a real LID is random).
pub fn lid_of(phone: &Phone) -> Jid {
    let digits = phone
        .digits()
        .bytes()
        .fold(1_469_598_103_934_665_603u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(1_099_511_628_211)
        });
    Jid::parse(&format!("{:015}@lid", digits % 1_000_000_000_000_000)).expect("digits")
}

impl Emulator {
    /// The session's own JID, when it is online.
    pub(crate) fn me(&self, session: SessionId) -> Result<Jid, EngineError> {
        self.online_phone(session).map(|p| Jid::from_phone(&p))
    }

    fn world<T>(&self, f: impl FnOnce(&mut super::world::World) -> T) -> T {
        let mut world = self.world.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut world)
    }

    /// Sets what the session's phone knows of a contact.
    pub fn set_contact(&self, session: SessionId, phone: Phone, setup: ContactSetup) {
        self.network(session, |n| {
            let jid = Jid::from_phone(&phone);
            if let Some(on) = setup.on_whatsapp {
                if on {
                    n.not_on_whatsapp.remove(&phone);
                } else {
                    n.not_on_whatsapp.insert(phone.clone());
                }
            }
            if let Some(restricted) = setup.privacy_restricted {
                if restricted {
                    n.book.privacy_restricted.insert(phone.clone());
                } else {
                    n.book.privacy_restricted.remove(&phone);
                }
            }
            match setup.name {
                Some(name) if name.is_empty() => {
                    n.book.names.remove(&jid);
                }
                Some(name) => {
                    n.book.names.insert(jid.clone(), name);
                }
                None => {}
            }
            match setup.picture_url {
                Some(url) if url.is_empty() => {
                    n.book.pictures.remove(&jid);
                }
                Some(url) => {
                    n.book.pictures.insert(jid, url);
                }
                None => {}
            }
        });
    }

    /// Creates a channel owned by the session; answers its JID.
    pub fn create_channel(
        &self,
        session: SessionId,
        name: &str,
        description: Option<String>,
    ) -> Result<Jid, EngineError> {
        let me = self.me(session)?;
        Ok(self.world(|w| w.create_channel(&me, name, description, now_millis())))
    }

    /// Sets a group's picture as the session (an admin, or anyone in an unlocked group).
    pub fn set_group_picture(
        &self,
        session: SessionId,
        group: &Jid,
        url: Option<String>,
    ) -> Result<(), EngineError> {
        let me = self.me(session)?;
        self.world(|w| w.set_picture(&me, group, url))
    }

    /// The online sessions on `jid`'s phone.
    fn sessions_of(&self, jid: &Jid) -> Vec<SessionId> {
        self.lock()
            .iter()
            .filter_map(|(id, r)| match r {
                Running::Online { phone } if &Jid::from_phone(phone) == jid => Some(*id),
                _ => None,
            })
            .collect()
    }

    /// Hands group events to the members' sessions; a failure to record the acting
    /// session's own event is returned.
    pub(crate) async fn notify(
        &self,
        actor: SessionId,
        notices: Notices,
    ) -> Result<(), EngineError> {
        let sink = self.sink()?;
        let mut result = Ok(());
        for (member, event) in notices {
            for session in self.sessions_of(&member) {
                let r = sink
                    .update(session, EngineUpdate::Group(event.clone()))
                    .await;
                if let Err(e) = r {
                    if session == actor {
                        result = Err(e);
                    } else {
                        tracing::warn!(%session, error = %e, "could not record a group event");
                    }
                }
            }
        }
        result
    }

    /// Refuses a send the emulated network would not carry (a blocked contact, a group the
    /// session is not in or may not write to, someone else's channel); answers who else
    /// receives it.
    pub(crate) fn route(&self, session: SessionId, to: &Jid) -> Result<Vec<Jid>, EngineError> {
        let me = self.me(session)?;
        if self.network(session, |n| n.book.blocked.contains(to)) {
            return Err(EngineError::Permanent(format!(
                "the session blocked {to}: unblock the contact to send"
            )));
        }
        match to.server() {
            JidServer::Group => self.world(|w| w.group_send(&me, to)),
            JidServer::Newsletter => self.world(|w| w.channel_send(&me, to)),
            _ => Ok(Vec::new()),
        }
    }

    /// Delivers a group or channel message to the other members' sessions as inbound.
    pub(crate) async fn fan_out(
        &self,
        session: SessionId,
        chat: &Jid,
        provider_id: &ProviderId,
        content: &Content,
        members: Vec<Jid>,
    ) {
        let Ok(me) = self.me(session) else { return };
        let Ok(sink) = self.sink() else { return };
        for member in members {
            for other in self.sessions_of(&member) {
                if other == session || self.network(other, |n| n.book.blocked.contains(&me)) {
                    continue;
                }
                let message = Inbound {
                    provider_id: provider_id.clone(),
                    chat: chat.clone(),
                    sender: me.clone(),
                    content: content.clone(),
                    sent_at: now_millis(),
                    quoted_provider_id: None,
                    chat_lid: None,
                    sender_lid: None,
                };
                if let Err(e) = sink.update(other, EngineUpdate::Inbound(message)).await {
                    tracing::warn!(session = %other, error = %e, "could not deliver a group message");
                }
            }
        }
    }

    fn reach(&self, session: SessionId) -> impl Fn(&Jid) -> Reach + use<> {
        let (absent, restricted) = self.network(session, |n| {
            (n.not_on_whatsapp.clone(), n.book.privacy_restricted.clone())
        });
        move |jid: &Jid| match jid.phone() {
            Some(p) if absent.contains(&p) => Reach::NotOnWhatsapp,
            Some(p) if restricted.contains(&p) => Reach::PrivacyRestricted,
            Some(_) => Reach::Ok,
            None => Reach::NotOnWhatsapp,
        }
    }

    pub(crate) fn registration(&self, session: SessionId, phone: &Phone) -> Registration {
        if self.network(session, |n| n.not_on_whatsapp.contains(phone)) {
            Registration {
                exists: false,
                jid: None,
                lid: None,
            }
        } else {
            Registration {
                exists: true,
                jid: Some(Jid::from_phone(phone)),
                lid: Some(lid_of(phone)),
            }
        }
    }

    pub(crate) fn address_book(&self, session: SessionId) -> Vec<EngineContact> {
        self.network(session, |n| {
            n.book
                .names
                .iter()
                .map(|(jid, name)| EngineContact {
                    jid: jid.clone(),
                    lid: jid.phone().map(|p| lid_of(&p)),
                    name: Some(name.clone()),
                    push_name: None,
                })
                .collect()
        })
    }

    pub(crate) fn blocked(&self, session: SessionId) -> Vec<Jid> {
        self.network(session, |n| n.book.blocked.iter().cloned().collect())
    }

    pub(crate) fn block(&self, session: SessionId, jid: &Jid, blocked: bool) {
        self.network(session, |n| {
            if blocked {
                n.book.blocked.insert(jid.clone());
            } else {
                n.book.blocked.remove(jid);
            }
        });
    }

    pub(crate) fn picture_of(
        &self,
        session: SessionId,
        jid: &Jid,
    ) -> Result<Option<String>, EngineError> {
        if jid.server() == JidServer::Group {
            let me = self.me(session)?;
            return self.world(|w| w.picture(&me, jid));
        }
        Ok(self.network(session, |n| n.book.pictures.get(jid).cloned()))
    }

    pub(crate) fn groups_of(&self, session: SessionId) -> Result<Vec<GroupInfo>, EngineError> {
        let me = self.me(session)?;
        Ok(self.world(|w| w.groups_of(&me)))
    }

    pub(crate) fn group_of(
        &self,
        session: SessionId,
        group: &Jid,
    ) -> Result<Option<GroupInfo>, EngineError> {
        let me = self.me(session)?;
        Ok(self.world(|w| w.group_of(&me, group).map(|g| g.info.clone())))
    }

    pub(crate) async fn new_group(
        &self,
        session: SessionId,
        subject: &str,
        participants: &[Jid],
    ) -> Result<(GroupInfo, Vec<ParticipantResult>), EngineError> {
        let me = self.me(session)?;
        let reach = self.reach(session);
        let (info, results, notices) =
            self.world(|w| w.create(&me, subject, participants, now_millis(), reach));
        self.notify(session, notices).await?;
        Ok((info, results))
    }

    pub(crate) async fn change_participants(
        &self,
        session: SessionId,
        group: &Jid,
        action: ParticipantAction,
        who: &[Jid],
    ) -> Result<Vec<ParticipantResult>, EngineError> {
        let me = self.me(session)?;
        let reach = self.reach(session);
        let (results, notices) = self.world(|w| w.participants(&me, group, action, who, reach))?;
        self.notify(session, notices).await?;
        Ok(results)
    }

    pub(crate) async fn change_group(
        &self,
        session: SessionId,
        group: &Jid,
        changes: &[GroupChange],
    ) -> Result<GroupInfo, EngineError> {
        let me = self.me(session)?;
        let (info, notices) = self.world(|w| w.update(&me, group, changes))?;
        self.notify(session, notices).await?;
        Ok(info)
    }

    pub(crate) fn invite_of(
        &self,
        session: SessionId,
        group: &Jid,
        reset: bool,
    ) -> Result<String, EngineError> {
        let me = self.me(session)?;
        self.world(|w| w.invite(&me, group, reset))
    }

    pub(crate) async fn leave(&self, session: SessionId, group: &Jid) -> Result<(), EngineError> {
        let me = self.me(session)?;
        let notices = self.world(|w| w.leave(&me, group))?;
        self.notify(session, notices).await
    }

    pub(crate) fn preview(
        &self,
        session: SessionId,
        code: &str,
    ) -> Result<Option<InvitePreview>, EngineError> {
        self.me(session)?;
        Ok(self.world(|w| w.preview(code)))
    }

    pub(crate) async fn join(
        &self,
        session: SessionId,
        code: &str,
    ) -> Result<Option<Jid>, EngineError> {
        let me = self.me(session)?;
        let Some((jid, notices)) = self.world(|w| w.accept(&me, code))? else {
            return Ok(None);
        };
        self.notify(session, notices).await?;
        Ok(Some(jid))
    }

    pub(crate) fn follow(
        &self,
        session: SessionId,
        channel: &Jid,
        follow: bool,
    ) -> Result<bool, EngineError> {
        let me = self.me(session)?;
        Ok(self.world(|w| w.follow(&me, channel, follow)))
    }

    pub(crate) fn channels_of(&self, session: SessionId) -> Result<Vec<ChannelInfo>, EngineError> {
        let me = self.me(session)?;
        Ok(self.world(|w| w.channels_of(&me)))
    }

    pub(crate) fn channel_of(
        &self,
        session: SessionId,
        channel: &Jid,
    ) -> Result<Option<ChannelInfo>, EngineError> {
        let me = self.me(session)?;
        Ok(self.world(|w| w.channel(&me, channel)))
    }

    pub(crate) fn user_of(&self, session: SessionId) -> Result<UserInfo, EngineError> {
        let phone = self.online_phone(session)?;
        let jid = Jid::from_phone(&phone);
        Ok(UserInfo {
            phone,
            jid,
            // The emulated phone has no profile name or picture of its own.
            name: None,
            picture_url: None,
        })
    }
}
