//! Contacts, groups, channels and the linked account of a session: the rules (which session,
//! whether its engine can, admin checks, validation) over the engine that knows the answers
//! and the store that keeps the names users save.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex},
};

use wharf_core::{
    EngineError, Jid, Phone, SessionId, SessionStatus,
    engine::DynEngine,
    jid::JidServer,
    social::{
        Ability, ChannelInfo, GroupChange, GroupInfo, InvitePreview, ParticipantAction,
        ParticipantResult, Registration, UserInfo,
    },
    time::Clock,
};
use wharf_store::{SessionRow, Store};

use super::{Caller, Engines};
use crate::ServiceError;

/// How long an on-WhatsApp answer is reused, so a loop of checks does not hammer WhatsApp.
pub const REGISTRATION_TTL_MS: i64 = 60_000;
/// Answers kept in that cache at most (it is emptied when full).
const REGISTRATION_KEPT: usize = 10_000;
/// The longest group subject WhatsApp takes, in characters.
pub const MAX_SUBJECT_CHARS: usize = 100;
/// The longest group description WhatsApp takes, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 2048;
/// Participants one request may name.
pub const MAX_PARTICIPANTS: usize = 256;
/// The disappearing-message timers WhatsApp offers, in seconds (0: off).
pub const EPHEMERAL_TIMERS: [u32; 4] = [0, 86_400, 604_800, 7_776_000];

/// A contact of a session, merged from the engine's address book, the names users saved,
/// the senders of inbound messages and the blocklist; one entry per person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contact {
    pub jid: Jid,
    pub phone: Option<Phone>,
    pub lid: Option<Jid>,
    /// The name a user saved, else the address book's.
    pub name: Option<String>,
    pub push_name: Option<String>,
    /// A user saved a name for it.
    pub saved: bool,
    pub in_address_book: bool,
    /// When it last wrote to the session.
    pub last_message_at: Option<i64>,
    pub blocked: bool,
}

impl Contact {
    fn new(jid: Jid) -> Self {
        Self {
            phone: jid.phone(),
            jid,
            lid: None,
            name: None,
            push_name: None,
            saved: false,
            in_address_book: false,
            last_message_at: None,
            blocked: false,
        }
    }
}

/// A page of contacts.
pub struct ContactPage {
    pub contacts: Vec<Contact>,
    /// The JID to pass as `cursor` for the next page.
    pub next_cursor: Option<String>,
}

/// An invite code and its link.
pub struct Invite {
    pub group: Jid,
    pub code: String,
}

/// A group created, with each participant's outcome.
pub struct CreatedGroup {
    pub group: GroupInfo,
    pub participants: Vec<ParticipantResult>,
}

/// The contacts, groups and channels service.
pub struct SocialService {
    store: Store,
    engines: Arc<Engines>,
    /// Live-connection calls run where the session's engine runs.
    ownership: Arc<crate::cluster::Ownership>,
    clock: Clock,
    registrations: Mutex<HashMap<(SessionId, Phone), (i64, Registration)>>,
}

fn text_len_ok(text: &str, max: usize) -> bool {
    text.chars().count() <= max
}

impl SocialService {
    pub fn new(
        store: Store,
        engines: Arc<Engines>,
        ownership: Arc<crate::cluster::Ownership>,
        clock: Clock,
    ) -> Self {
        Self {
            store,
            engines,
            ownership,
            clock,
            registrations: Mutex::new(HashMap::new()),
        }
    }

    /// The session a request acts on (named, or the session key's own), its engine, which
    /// must have `ability`, and, unless `offline_ok`, a live connection.
    async fn session(
        &self,
        caller: &Caller,
        named: Option<SessionId>,
        ability: Option<Ability>,
    ) -> Result<(SessionRow, DynEngine), ServiceError> {
        let id = match (named, caller.session_id) {
            (Some(id), _) | (None, Some(id)) => id,
            (None, None) => {
                return Err(ServiceError::invalid(
                    "session_id",
                    "required with a personal access token (a query parameter naming the session)",
                ));
            }
        };
        if !caller.can_see(id) {
            return Err(ServiceError::NotFound("session"));
        }
        crate::log_fields::session(id);
        let row = self
            .store
            .get_session(caller.account_id, id)
            .await?
            .filter(|r| !r.status.is_deleting())
            .ok_or(ServiceError::NotFound("session"))?;
        let engine = self.engines.get(row.engine)?.clone();
        if let Some(ability) = ability {
            if !ability.within(&engine.social()) {
                return Err(ServiceError::invalid_with(
                    "unsupported_by_engine",
                    "session_id",
                    format!(
                        "{} is not supported by the {} engine of this session",
                        ability.describe(),
                        row.engine
                    ),
                ));
            }
            if row.status != SessionStatus::Connected {
                return Err(ServiceError::conflict(
                    "session_not_connected",
                    format!(
                        "the session is {}, not connected: connect it first",
                        row.status.as_str()
                    ),
                ));
            }
            self.ownership.require_local(row.id).await?;
        }
        Ok((row, engine))
    }

    /// The caller's session (for `/api/status`).
    pub async fn status(
        &self,
        caller: &Caller,
        named: Option<SessionId>,
    ) -> Result<SessionRow, ServiceError> {
        Ok(self.session(caller, named, None).await?.0)
    }

    /// The linked account of the session.
    pub async fn user(
        &self,
        caller: &Caller,
        named: Option<SessionId>,
    ) -> Result<UserInfo, ServiceError> {
        let (row, engine) = self.session(caller, named, Some(Ability::User)).await?;
        Ok(engine.user(row.id).await?)
    }

    /// Decrypts a media reference the session received.
    pub async fn decrypt_media(
        &self,
        caller: &Caller,
        named: Option<SessionId>,
        reference: &serde_json::Value,
    ) -> Result<(Vec<u8>, String), ServiceError> {
        let (row, engine) = self
            .session(caller, named, Some(Ability::DecryptMedia))
            .await?;
        if row.engine == wharf_core::EngineKind::Web {
            // A malformed reference is the caller's mistake, told before any download.
            wharf_engines::web::media::decode_reference(reference)
                .map_err(|why| ServiceError::invalid("message", why))?;
        }
        Ok(engine.decrypt_media(row.id, reference).await?)
    }

    /// Whether `phone` is on WhatsApp (answers reused for [`REGISTRATION_TTL_MS`]).
    pub async fn on_whatsapp(
        &self,
        caller: &Caller,
        named: Option<SessionId>,
        phone: Phone,
    ) -> Result<Registration, ServiceError> {
        let (row, engine) = self
            .session(caller, named, Some(Ability::OnWhatsapp))
            .await?;
        let now = self.clock.now_millis();
        let key = (row.id, phone);
        if let Some((at, answer)) = self.cache().get(&key)
            && now - at < REGISTRATION_TTL_MS
        {
            return Ok(answer.clone());
        }
        let answer = engine.on_whatsapp(row.id, &key.1).await?;
        let mut cache = self.cache();
        if cache.len() >= REGISTRATION_KEPT {
            cache.clear();
        }
        cache.insert(key, (now, answer.clone()));
        Ok(answer)
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, HashMap<(SessionId, Phone), (i64, Registration)>> {
        self.registrations.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn all_contacts(
        &self,
        row: &SessionRow,
        engine: &DynEngine,
    ) -> Result<BTreeMap<String, Contact>, ServiceError> {
        let book = engine.contacts(row.id).await?;
        let blocked = engine.blocklist(row.id).await?;
        let saved = self.store.contact_names(row.account_id, row.id).await?;
        let senders = self.store.inbound_senders(row.account_id, row.id).await?;
        // One identity per person: a LID the address book links to a number is that number.
        let mut by_lid: HashMap<String, Jid> = HashMap::new();
        let mut all: BTreeMap<String, Contact> = BTreeMap::new();
        for c in book {
            if let Some(lid) = &c.lid {
                by_lid.insert(lid.to_string(), c.jid.clone());
            }
            let entry = all
                .entry(c.jid.to_string())
                .or_insert_with(|| Contact::new(c.jid.clone()));
            // Someone known by their push name only is not in the phone's address book.
            entry.in_address_book = c.name.is_some();
            entry.lid = c.lid;
            entry.name = c.name;
            entry.push_name = c.push_name;
        }
        let identity = |text: &str| -> Option<Jid> {
            let jid = Jid::parse(text).ok()?;
            Some(by_lid.get(&jid.to_string()).cloned().unwrap_or(jid))
        };
        for s in saved {
            let Some(jid) = identity(&s.jid) else {
                continue;
            };
            let entry = all
                .entry(jid.to_string())
                .or_insert_with(|| Contact::new(jid));
            entry.name = Some(s.name);
            entry.saved = true;
        }
        for (sender, at) in senders {
            let Some(jid) = identity(&sender) else {
                continue;
            };
            if !matches!(jid.server(), JidServer::User | JidServer::Lid) {
                continue;
            }
            let entry = all
                .entry(jid.to_string())
                .or_insert_with(|| Contact::new(jid));
            entry.last_message_at = Some(entry.last_message_at.map_or(at, |t| t.max(at)));
        }
        for jid in blocked {
            let jid = by_lid.get(&jid.to_string()).cloned().unwrap_or(jid);
            all.entry(jid.to_string())
                .or_insert_with(|| Contact::new(jid))
                .blocked = true;
        }
        Ok(all)
    }

    /// A page of the session's contacts in JID order after `cursor`, those whose name or
    /// number contains `search` (case-insensitive) when given.
    pub async fn contacts(
        &self,
        caller: &Caller,
        named: Option<SessionId>,
        search: Option<&str>,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<ContactPage, ServiceError> {
        let (row, engine) = self.session(caller, named, Some(Ability::Contacts)).await?;
        let all = self.all_contacts(&row, &engine).await?;
        let needle = search.map(str::to_lowercase);
        let digits: Option<String> = search
            .map(|s| s.chars().filter(char::is_ascii_digit).collect())
            .filter(|d: &String| !d.is_empty());
        let matches = |c: &Contact| match &needle {
            None => true,
            Some(n) => {
                [&c.name, &c.push_name]
                    .into_iter()
                    .flatten()
                    .any(|name| name.to_lowercase().contains(n.as_str()))
                    || digits.as_deref().is_some_and(|d| c.jid.user().contains(d))
            }
        };
        let mut contacts: Vec<Contact> = all
            .into_iter()
            .filter(|(k, _)| cursor.is_none_or(|c| k.as_str() > c))
            .map(|(_, c)| c)
            .filter(matches)
            .take(limit + 1)
            .collect();
        let next_cursor = if contacts.len() > limit {
            contacts.truncate(limit);
            contacts.last().map(|c| c.jid.to_string())
        } else {
            None
        };
        Ok(ContactPage {
            contacts,
            next_cursor,
        })
    }

    /// One contact; 404 when the session knows nothing of it.
    pub async fn contact(
        &self,
        caller: &Caller,
        named: Option<SessionId>,
        phone: &Phone,
    ) -> Result<Contact, ServiceError> {
        let (row, engine) = self.session(caller, named, Some(Ability::Contacts)).await?;
        self.all_contacts(&row, &engine)
            .await?
            .remove(&Jid::from_phone(phone).to_string())
            .ok_or(ServiceError::NotFound("contact"))
    }

    /// Saves a name for a contact; answers the contact.
    pub async fn save_contact(
        &self,
        caller: &Caller,
        named: Option<SessionId>,
        phone: &Phone,
        name: &str,
    ) -> Result<Contact, ServiceError> {
        let name = name.trim();
        if name.is_empty() {
            return Err(ServiceError::invalid("name", "required, not blank"));
        }
        if !text_len_ok(name, 256) {
            return Err(ServiceError::invalid("name", "at most 256 characters"));
        }
        let (row, _) = self.session(caller, named, Some(Ability::Contacts)).await?;
        let jid = Jid::from_phone(phone);
        self.store
            .save_contact_name(row.account_id, row.id, &jid.to_string(), name)
            .await?
            .ok_or(ServiceError::NotFound("session"))?;
        self.contact(caller, Some(row.id), phone).await
    }

    /// The picture of a contact or group; 404 when it has none or hides it.
    pub async fn picture(
        &self,
        caller: &Caller,
        named: Option<SessionId>,
        jid: &Jid,
    ) -> Result<String, ServiceError> {
        let ability = if jid.server() == JidServer::Group {
            Ability::Groups
        } else {
            Ability::Contacts
        };
        let (row, engine) = self.session(caller, named, Some(ability)).await?;
        if jid.server() == JidServer::Group {
            self.member_group(&row, &engine, jid).await?;
        }
        engine
            .picture(row.id, jid)
            .await?
            .ok_or(ServiceError::NotFound("picture"))
    }

    /// Blocks or unblocks a contact on WhatsApp; answers the contact as it now is.
    pub async fn block(
        &self,
        caller: &Caller,
        named: Option<SessionId>,
        phone: &Phone,
        blocked: bool,
    ) -> Result<Contact, ServiceError> {
        let (row, engine) = self.session(caller, named, Some(Ability::Contacts)).await?;
        let jid = Jid::from_phone(phone);
        engine.set_blocked(row.id, &jid, blocked).await?;
        let mut contact = self
            .all_contacts(&row, &engine)
            .await?
            .remove(&jid.to_string())
            .unwrap_or_else(|| Contact::new(jid));
        contact.blocked = blocked;
        Ok(contact)
    }

    /// The groups the session is in.
    pub async fn groups(
        &self,
        caller: &Caller,
        named: Option<SessionId>,
    ) -> Result<Vec<GroupInfo>, ServiceError> {
        let (row, engine) = self.session(caller, named, Some(Ability::Groups)).await?;
        Ok(engine.groups(row.id).await?)
    }

    async fn member_group(
        &self,
        row: &SessionRow,
        engine: &DynEngine,
        group: &Jid,
    ) -> Result<GroupInfo, ServiceError> {
        engine
            .group(row.id, group)
            .await?
            .ok_or(ServiceError::NotFound("group"))
    }

    /// Refuses unless the session is an admin of `group`.
    fn require_admin(row: &SessionRow, group: &GroupInfo) -> Result<(), ServiceError> {
        let me = row.phone_number.as_ref().map(Jid::from_phone);
        let admin = group
            .participants
            .iter()
            .any(|p| Some(&p.jid) == me.as_ref() && p.role.is_admin());
        if admin {
            Ok(())
        } else {
            Err(ServiceError::Forbidden(format!(
                "the session is not an admin of the group {}; only admins can do this",
                group.jid
            )))
        }
    }

    /// One group the session is in.
    pub async fn group(
        &self,
        caller: &Caller,
        named: Option<SessionId>,
        group: &Jid,
    ) -> Result<GroupInfo, ServiceError> {
        let (row, engine) = self.session(caller, named, Some(Ability::Groups)).await?;
        self.member_group(&row, &engine, group).await
    }

    fn check_participants(participants: &[Jid], field: &str) -> Result<(), ServiceError> {
        if participants.len() > MAX_PARTICIPANTS {
            return Err(ServiceError::invalid(
                field,
                format!("at most {MAX_PARTICIPANTS} participants per request"),
            ));
        }
        Ok(())
    }

    /// Creates a group with the session as its creator.
    pub async fn create_group(
        &self,
        caller: &Caller,
        named: Option<SessionId>,
        subject: &str,
        participants: Vec<Jid>,
    ) -> Result<CreatedGroup, ServiceError> {
        let subject = subject.trim();
        if subject.is_empty() {
            return Err(ServiceError::invalid("subject", "required, not blank"));
        }
        if !text_len_ok(subject, MAX_SUBJECT_CHARS) {
            return Err(ServiceError::invalid(
                "subject",
                format!("at most {MAX_SUBJECT_CHARS} characters"),
            ));
        }
        Self::check_participants(&participants, "participants")?;
        let (row, engine) = self.session(caller, named, Some(Ability::Groups)).await?;
        let me = row.phone_number.as_ref().map(Jid::from_phone);
        let participants: Vec<Jid> = dedupe(participants)
            .into_iter()
            .filter(|p| Some(p) != me.as_ref())
            .collect();
        let (group, participants) = engine.create_group(row.id, subject, &participants).await?;
        Ok(CreatedGroup {
            group,
            participants,
        })
    }

    /// Adds, removes, promotes or demotes participants; the session must be an admin.
    pub async fn participants(
        &self,
        caller: &Caller,
        named: Option<SessionId>,
        group: &Jid,
        action: ParticipantAction,
        participants: Vec<Jid>,
    ) -> Result<Vec<ParticipantResult>, ServiceError> {
        if participants.is_empty() {
            return Err(ServiceError::invalid("participants", "name at least one"));
        }
        Self::check_participants(&participants, "participants")?;
        let (row, engine) = self.session(caller, named, Some(Ability::Groups)).await?;
        let info = self.member_group(&row, &engine, group).await?;
        Self::require_admin(&row, &info)?;
        Ok(engine
            .update_participants(row.id, group, action, &dedupe(participants))
            .await?)
    }

    /// Changes a group's subject, description or settings. Subject and description need an
    /// admin in a locked group; the other settings always do.
    pub async fn update_group(
        &self,
        caller: &Caller,
        named: Option<SessionId>,
        group: &Jid,
        changes: Vec<GroupChange>,
    ) -> Result<GroupInfo, ServiceError> {
        if changes.is_empty() {
            return Err(ServiceError::invalid(
                "settings",
                "name at least one of subject, description, announce, locked, ephemeral_seconds, join_approval",
            ));
        }
        for c in &changes {
            match c {
                GroupChange::Subject(s) if s.trim().is_empty() => {
                    return Err(ServiceError::invalid("subject", "may not be blank"));
                }
                GroupChange::Subject(s) if !text_len_ok(s, MAX_SUBJECT_CHARS) => {
                    return Err(ServiceError::invalid(
                        "subject",
                        format!("at most {MAX_SUBJECT_CHARS} characters"),
                    ));
                }
                GroupChange::Description(Some(d)) if !text_len_ok(d, MAX_DESCRIPTION_CHARS) => {
                    return Err(ServiceError::invalid(
                        "description",
                        format!("at most {MAX_DESCRIPTION_CHARS} characters"),
                    ));
                }
                GroupChange::Ephemeral(s) if !EPHEMERAL_TIMERS.contains(s) => {
                    return Err(ServiceError::invalid(
                        "ephemeral_seconds",
                        "must be 0 (off), 86400 (24 hours), 604800 (7 days) or 7776000 (90 days)",
                    ));
                }
                _ => {}
            }
        }
        let (row, engine) = self.session(caller, named, Some(Ability::Groups)).await?;
        let info = self.member_group(&row, &engine, group).await?;
        let needs_admin = changes.iter().any(|c| match c {
            GroupChange::Subject(_) | GroupChange::Description(_) => info.settings.locked,
            _ => true,
        });
        if needs_admin {
            Self::require_admin(&row, &info)?;
        }
        Ok(engine.update_group(row.id, group, &changes).await?)
    }

    /// The group's invite code (admins only); `reset` revokes the old one.
    pub async fn invite(
        &self,
        caller: &Caller,
        named: Option<SessionId>,
        group: &Jid,
        reset: bool,
    ) -> Result<Invite, ServiceError> {
        let (row, engine) = self.session(caller, named, Some(Ability::Groups)).await?;
        let info = self.member_group(&row, &engine, group).await?;
        Self::require_admin(&row, &info)?;
        let code = engine.invite_code(row.id, group, reset).await?;
        Ok(Invite {
            group: group.clone(),
            code,
        })
    }

    /// Leaves a group.
    pub async fn leave(
        &self,
        caller: &Caller,
        named: Option<SessionId>,
        group: &Jid,
    ) -> Result<(), ServiceError> {
        let (row, engine) = self.session(caller, named, Some(Ability::Groups)).await?;
        self.member_group(&row, &engine, group).await?;
        Ok(engine.leave_group(row.id, group).await?)
    }

    /// What an invite code leads to.
    pub async fn resolve_invite(
        &self,
        caller: &Caller,
        named: Option<SessionId>,
        code: &str,
    ) -> Result<InvitePreview, ServiceError> {
        // The code is the path's `inviteCode` (`GET /api/groups/invite/{inviteCode}`).
        let code = parse_code(code, "inviteCode")?;
        let (row, engine) = self.session(caller, named, Some(Ability::Groups)).await?;
        engine
            .resolve_invite(row.id, &code)
            .await?
            .ok_or(ServiceError::NotFound("invite"))
    }

    /// Joins the group of an invite code; answers the group.
    pub async fn accept_invite(
        &self,
        caller: &Caller,
        named: Option<SessionId>,
        code: &str,
    ) -> Result<GroupInfo, ServiceError> {
        let code = parse_code(code, "invite_code")?;
        let (row, engine) = self.session(caller, named, Some(Ability::Groups)).await?;
        let jid = engine
            .accept_invite(row.id, &code)
            .await
            .map_err(|e| match e {
                EngineError::Conflict(m) => ServiceError::conflict("invite_not_accepted", m),
                other => other.into(),
            })?
            .ok_or(ServiceError::NotFound("invite"))?;
        self.member_group(&row, &engine, &jid).await
    }

    /// Follows or unfollows a channel.
    pub async fn follow(
        &self,
        caller: &Caller,
        named: Option<SessionId>,
        channel: &Jid,
        follow: bool,
    ) -> Result<ChannelInfo, ServiceError> {
        let (row, engine) = self
            .session(caller, named, Some(Ability::ChannelFollow))
            .await?;
        if !engine.follow_channel(row.id, channel, follow).await? {
            return Err(ServiceError::NotFound("channel"));
        }
        engine
            .channel(row.id, channel)
            .await?
            .ok_or(ServiceError::NotFound("channel"))
    }

    /// The channels the session follows or owns.
    pub async fn channels(
        &self,
        caller: &Caller,
        named: Option<SessionId>,
    ) -> Result<Vec<ChannelInfo>, ServiceError> {
        let (row, engine) = self
            .session(caller, named, Some(Ability::ChannelFollow))
            .await?;
        Ok(engine.channels(row.id).await?)
    }

    /// One channel's metadata.
    pub async fn channel(
        &self,
        caller: &Caller,
        named: Option<SessionId>,
        channel: &Jid,
    ) -> Result<ChannelInfo, ServiceError> {
        let (row, engine) = self
            .session(caller, named, Some(Ability::ChannelFollow))
            .await?;
        engine
            .channel(row.id, channel)
            .await?
            .ok_or(ServiceError::NotFound("channel"))
    }
}

fn dedupe(jids: Vec<Jid>) -> Vec<Jid> {
    let mut seen = std::collections::HashSet::new();
    jids.into_iter()
        .filter(|j| seen.insert(j.clone()))
        .collect()
}

/// An invite code, or the code of a `https://chat.whatsapp.com/…` link.
fn parse_code(raw: &str, field: &str) -> Result<String, ServiceError> {
    let code = raw
        .trim()
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .trim_start_matches("chat.whatsapp.com/");
    if code.is_empty() {
        return Err(ServiceError::invalid(field, "required"));
    }
    if code.len() > 64
        || !code
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(ServiceError::invalid(
            field,
            "must be an invite code (letters and digits) or a chat.whatsapp.com link",
        ));
    }
    Ok(code.to_owned())
}
