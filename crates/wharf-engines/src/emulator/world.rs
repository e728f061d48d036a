//! The emulated network's shared part: groups (participants, admins, settings, invite
//! codes) and channels, seen alike by every emulated session, so one session's invite can be
//! accepted by another. Each member is a phone JID; a member that is a running emulated
//! session hears of changes through its own group events.

use std::collections::{BTreeMap, HashMap, HashSet};

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use rand::RngCore;
use serde_json::json;
use wharf_core::{
    EngineError, Jid,
    social::{
        ChannelInfo, GroupChange, GroupEvent, GroupEventKind, GroupInfo, GroupSettings,
        InvitePreview, Participant, ParticipantAction, ParticipantOutcome, ParticipantResult,
        ParticipantRole,
    },
};

/// Members per group, as WhatsApp allows.
pub const GROUP_LIMIT: usize = 1024;

/// A group: its members by JID, in joining order.
#[derive(Debug, Clone)]
pub(crate) struct Group {
    pub info: GroupInfo,
    pub invite: Option<String>,
    pub picture: Option<String>,
}

impl Group {
    fn role(&self, jid: &Jid) -> Option<ParticipantRole> {
        self.info
            .participants
            .iter()
            .find(|p| &p.jid == jid)
            .map(|p| p.role)
    }

    fn members(&self) -> Vec<Jid> {
        self.info
            .participants
            .iter()
            .map(|p| p.jid.clone())
            .collect()
    }
}

/// A channel.
#[derive(Debug, Clone)]
pub(crate) struct Channel {
    pub name: String,
    pub description: Option<String>,
    pub owner: Jid,
    pub followers: HashSet<Jid>,
}

/// Events for members: `(member, event)`; the emulator hands each to the member's session.
pub(crate) type Notices = Vec<(Jid, GroupEvent)>;

/// What a member who is not allowed to add someone sees.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Reach {
    Ok,
    NotOnWhatsapp,
    PrivacyRestricted,
}

/// Groups and channels of the emulated network.
#[derive(Debug, Default)]
pub(crate) struct World {
    groups: BTreeMap<String, Group>,
    invites: HashMap<String, Jid>,
    channels: BTreeMap<String, Channel>,
    next_group: u64,
}

fn random_code() -> String {
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)[..22].to_owned()
}

fn event(kind: GroupEventKind, group: &Jid, detail: serde_json::Value) -> GroupEvent {
    GroupEvent {
        kind,
        group: group.clone(),
        detail,
    }
}

fn not_member(group: &Jid) -> EngineError {
    EngineError::Permanent(format!("the session is not a member of the group {group}"))
}

impl World {
    /// The group, when `me` is in it.
    pub fn group_of(&self, me: &Jid, group: &Jid) -> Option<&Group> {
        self.groups
            .get(&group.to_string())
            .filter(|g| g.role(me).is_some())
    }

    /// The groups `me` is in.
    pub fn groups_of(&self, me: &Jid) -> Vec<GroupInfo> {
        self.groups
            .values()
            .filter(|g| g.role(me).is_some())
            .map(|g| g.info.clone())
            .collect()
    }

    fn admin_group(&mut self, me: &Jid, group: &Jid) -> Result<&mut Group, EngineError> {
        let g = self
            .groups
            .get_mut(&group.to_string())
            .filter(|g| g.role(me).is_some())
            .ok_or_else(|| not_member(group))?;
        if !g.role(me).is_some_and(ParticipantRole::is_admin) {
            return Err(EngineError::Conflict(format!(
                "only an admin of the group {group} can do this; the session is not one"
            )));
        }
        Ok(g)
    }

    /// Creates a group led by `me`; `reach` says who can be added.
    pub fn create(
        &mut self,
        me: &Jid,
        subject: &str,
        participants: &[Jid],
        now: i64,
        reach: impl Fn(&Jid) -> Reach,
    ) -> (GroupInfo, Vec<ParticipantResult>, Notices) {
        self.next_group += 1;
        // 120363… is the prefix WhatsApp gives groups; the rest is made unique here.
        let jid = Jid::parse(&format!(
            "120363{:012}{:06}@g.us",
            (now.max(0) as u64) % 1_000_000_000_000,
            self.next_group % 1_000_000
        ))
        .expect("digits make a group JID");
        let info = GroupInfo {
            jid: jid.clone(),
            subject: subject.to_owned(),
            description: None,
            owner: Some(me.clone()),
            created_at: now,
            participants: vec![Participant {
                jid: me.clone(),
                role: ParticipantRole::Superadmin,
            }],
            settings: GroupSettings::default(),
        };
        self.groups.insert(
            jid.to_string(),
            Group {
                info,
                invite: None,
                picture: None,
            },
        );
        let mut notices = vec![(
            me.clone(),
            event(
                GroupEventKind::Joined,
                &jid,
                json!({ "subject": subject, "by": me, "reason": "created" }),
            ),
        )];
        let (results, more) = self
            .participants(me, &jid, ParticipantAction::Add, participants, reach)
            .expect("the creator is the group's admin");
        // The creator's own "participants" notice is part of creating it.
        notices.extend(more.into_iter().filter(|(to, _)| to != me));
        let info = self.groups[&jid.to_string()].info.clone();
        (info, results, notices)
    }

    /// Adds, removes, promotes or demotes; `me` must be an admin.
    pub fn participants(
        &mut self,
        me: &Jid,
        group: &Jid,
        action: ParticipantAction,
        who: &[Jid],
        reach: impl Fn(&Jid) -> Reach,
    ) -> Result<(Vec<ParticipantResult>, Notices), EngineError> {
        let g = self.admin_group(me, group)?;
        let before = g.members();
        let mut results = Vec::new();
        let mut changed = Vec::new();
        for jid in who {
            let role = g.role(jid);
            let outcome = match (action, role) {
                (ParticipantAction::Add, Some(_)) => ParticipantOutcome::AlreadyInGroup,
                (ParticipantAction::Add, None) => match reach(jid) {
                    Reach::NotOnWhatsapp => ParticipantOutcome::NotOnWhatsapp,
                    Reach::PrivacyRestricted => ParticipantOutcome::PrivacyRestricted,
                    Reach::Ok if g.info.participants.len() >= GROUP_LIMIT => {
                        ParticipantOutcome::NotAllowed
                    }
                    Reach::Ok => {
                        g.info.participants.push(Participant {
                            jid: jid.clone(),
                            role: ParticipantRole::Member,
                        });
                        ParticipantOutcome::Added
                    }
                },
                (_, None) => ParticipantOutcome::NotInGroup,
                (_, Some(ParticipantRole::Superadmin)) if jid != me => {
                    ParticipantOutcome::NotAllowed
                }
                (ParticipantAction::Remove, Some(_)) => {
                    g.info.participants.retain(|p| &p.jid != jid);
                    ParticipantOutcome::Removed
                }
                (ParticipantAction::Promote, Some(_)) => {
                    set_role(g, jid, ParticipantRole::Admin);
                    ParticipantOutcome::Promoted
                }
                (ParticipantAction::Demote, Some(ParticipantRole::Superadmin)) => {
                    ParticipantOutcome::NotAllowed
                }
                (ParticipantAction::Demote, Some(_)) => {
                    set_role(g, jid, ParticipantRole::Member);
                    ParticipantOutcome::Demoted
                }
            };
            if matches!(
                outcome,
                ParticipantOutcome::Added
                    | ParticipantOutcome::Removed
                    | ParticipantOutcome::Promoted
                    | ParticipantOutcome::Demoted
            ) {
                changed.push(jid.clone());
            }
            results.push(ParticipantResult {
                jid: jid.clone(),
                outcome,
            });
        }
        let mut notices = Notices::new();
        if !changed.is_empty() {
            let detail = json!({ "action": action.as_str(), "participants": changed, "by": me });
            let subject = g.info.subject.clone();
            for member in &before {
                if action == ParticipantAction::Remove && changed.contains(member) {
                    notices.push((
                        member.clone(),
                        event(
                            GroupEventKind::Left,
                            group,
                            json!({ "reason": "removed", "by": me }),
                        ),
                    ));
                } else {
                    notices.push((
                        member.clone(),
                        event(GroupEventKind::Participants, group, detail.clone()),
                    ));
                }
            }
            if action == ParticipantAction::Add {
                for jid in &changed {
                    notices.push((
                        jid.clone(),
                        event(
                            GroupEventKind::Joined,
                            group,
                            json!({ "subject": subject, "by": me, "reason": "added" }),
                        ),
                    ));
                }
            }
        }
        Ok((results, notices))
    }

    /// Applies setting changes; the subject, description and picture need an admin when the
    /// group is locked, every other setting always does.
    pub fn update(
        &mut self,
        me: &Jid,
        group: &Jid,
        changes: &[GroupChange],
    ) -> Result<(GroupInfo, Notices), EngineError> {
        let g = self
            .groups
            .get_mut(&group.to_string())
            .filter(|g| g.role(me).is_some())
            .ok_or_else(|| not_member(group))?;
        let admin = g.role(me).is_some_and(ParticipantRole::is_admin);
        let needs_admin = changes.iter().any(|c| match c {
            GroupChange::Subject(_) | GroupChange::Description(_) => g.info.settings.locked,
            _ => true,
        });
        if needs_admin && !admin {
            return Err(EngineError::Conflict(format!(
                "only an admin of the group {group} can change these settings; the session is not one"
            )));
        }
        let mut changed = serde_json::Map::new();
        for c in changes {
            match c {
                GroupChange::Subject(s) => {
                    g.info.subject = s.clone();
                    changed.insert("subject".into(), json!(s));
                }
                GroupChange::Description(d) => {
                    g.info.description = d.clone();
                    changed.insert("description".into(), json!(d));
                }
                GroupChange::Announce(v) => {
                    g.info.settings.announce = *v;
                    changed.insert("announce".into(), json!(v));
                }
                GroupChange::Locked(v) => {
                    g.info.settings.locked = *v;
                    changed.insert("locked".into(), json!(v));
                }
                GroupChange::Ephemeral(v) => {
                    g.info.settings.ephemeral_seconds = *v;
                    changed.insert("ephemeral_seconds".into(), json!(v));
                }
                GroupChange::JoinApproval(v) => {
                    g.info.settings.join_approval = *v;
                    changed.insert("join_approval".into(), json!(v));
                }
            }
        }
        let detail = json!({ "changes": changed, "by": me });
        let notices = g
            .members()
            .into_iter()
            .map(|m| (m, event(GroupEventKind::Updated, group, detail.clone())))
            .collect();
        Ok((g.info.clone(), notices))
    }

    /// The group's invite code (made on first ask; `reset` makes a new one). Admins only.
    pub fn invite(&mut self, me: &Jid, group: &Jid, reset: bool) -> Result<String, EngineError> {
        let g = self.admin_group(me, group)?;
        let old = g.invite.clone();
        let code = match old.clone().filter(|_| !reset) {
            Some(code) => return Ok(code),
            None => random_code(),
        };
        g.invite = Some(code.clone());
        if let Some(old) = old {
            self.invites.remove(&old);
        }
        self.invites.insert(code.clone(), group.clone());
        Ok(code)
    }

    /// The group's picture (members only).
    pub fn picture(&self, me: &Jid, group: &Jid) -> Result<Option<String>, EngineError> {
        self.group_of(me, group)
            .map(|g| g.picture.clone())
            .ok_or_else(|| not_member(group))
    }

    /// Sets the group's picture (admins, or anyone when the group is not locked).
    pub fn set_picture(
        &mut self,
        me: &Jid,
        group: &Jid,
        url: Option<String>,
    ) -> Result<(), EngineError> {
        let g = self
            .groups
            .get_mut(&group.to_string())
            .filter(|g| g.role(me).is_some())
            .ok_or_else(|| not_member(group))?;
        if g.info.settings.locked && !g.role(me).is_some_and(ParticipantRole::is_admin) {
            return Err(EngineError::Conflict(format!(
                "only an admin of the locked group {group} can change its picture"
            )));
        }
        g.picture = url;
        Ok(())
    }

    /// `me` leaves; the oldest remaining member becomes admin when no admin is left.
    pub fn leave(&mut self, me: &Jid, group: &Jid) -> Result<Notices, EngineError> {
        let g = self
            .groups
            .get_mut(&group.to_string())
            .filter(|g| g.role(me).is_some())
            .ok_or_else(|| not_member(group))?;
        g.info.participants.retain(|p| &p.jid != me);
        if !g.info.participants.iter().any(|p| p.role.is_admin())
            && let Some(first) = g.info.participants.first_mut()
        {
            first.role = ParticipantRole::Admin;
        }
        let mut notices = vec![(
            me.clone(),
            event(GroupEventKind::Left, group, json!({ "reason": "left" })),
        )];
        let detail = json!({ "action": "leave", "participants": [me], "by": me });
        notices.extend(g.members().into_iter().map(|m| {
            (
                m,
                event(GroupEventKind::Participants, group, detail.clone()),
            )
        }));
        Ok(notices)
    }

    /// What a code leads to.
    pub fn preview(&self, code: &str) -> Option<InvitePreview> {
        let jid = self.invites.get(code)?;
        let g = self.groups.get(&jid.to_string())?;
        Some(InvitePreview {
            jid: jid.clone(),
            subject: g.info.subject.clone(),
            description: g.info.description.clone(),
            size: g.info.participants.len(),
        })
    }

    /// `me` joins by code; a member joining again is told so.
    pub fn accept(&mut self, me: &Jid, code: &str) -> Result<Option<(Jid, Notices)>, EngineError> {
        let Some(jid) = self.invites.get(code).cloned() else {
            return Ok(None);
        };
        let Some(g) = self.groups.get_mut(&jid.to_string()) else {
            return Ok(None);
        };
        if g.role(me).is_some() {
            return Err(EngineError::Conflict(format!(
                "the session is already a member of the group {jid}"
            )));
        }
        if g.info.settings.join_approval {
            return Err(EngineError::Conflict(format!(
                "the group {jid} needs an admin's approval to join; WhatsApp sent a request"
            )));
        }
        if g.info.participants.len() >= GROUP_LIMIT {
            return Err(EngineError::Conflict(format!("the group {jid} is full")));
        }
        let before = g.members();
        g.info.participants.push(Participant {
            jid: me.clone(),
            role: ParticipantRole::Member,
        });
        let mut notices = vec![(
            me.clone(),
            event(
                GroupEventKind::Joined,
                &jid,
                json!({ "subject": g.info.subject, "reason": "invite" }),
            ),
        )];
        let detail = json!({ "action": "join", "participants": [me], "by": me });
        notices.extend(
            before
                .into_iter()
                .map(|m| (m, event(GroupEventKind::Participants, &jid, detail.clone()))),
        );
        Ok(Some((jid, notices)))
    }

    /// Whether `me` may send into `group`, and the other members who receive it.
    pub fn group_send(&self, me: &Jid, group: &Jid) -> Result<Vec<Jid>, EngineError> {
        let g = self.group_of(me, group).ok_or_else(|| not_member(group))?;
        if g.info.settings.announce && !g.role(me).is_some_and(ParticipantRole::is_admin) {
            return Err(EngineError::Permanent(format!(
                "only admins can send to the group {group}"
            )));
        }
        Ok(g.members().into_iter().filter(|m| m != me).collect())
    }

    /// Makes a channel owned by `me`.
    pub fn create_channel(
        &mut self,
        me: &Jid,
        name: &str,
        description: Option<String>,
        now: i64,
    ) -> Jid {
        let jid = Jid::parse(&format!(
            "120363{:012}{:06}@newsletter",
            (now.max(0) as u64) % 1_000_000_000_000,
            (self.channels.len() as u64 + 1) % 1_000_000
        ))
        .expect("digits make a channel JID");
        self.channels.insert(
            jid.to_string(),
            Channel {
                name: name.to_owned(),
                description,
                owner: me.clone(),
                followers: HashSet::new(),
            },
        );
        jid
    }

    fn channel_info(me: &Jid, jid: &str, c: &Channel) -> ChannelInfo {
        ChannelInfo {
            jid: Jid::parse(jid).expect("stored channel JIDs parse"),
            name: c.name.clone(),
            description: c.description.clone(),
            followers: c.followers.len() as u64,
            following: c.followers.contains(me),
            owner: &c.owner == me,
        }
    }

    /// Follows or unfollows; `false` when there is no such channel.
    pub fn follow(&mut self, me: &Jid, channel: &Jid, follow: bool) -> bool {
        let Some(c) = self.channels.get_mut(&channel.to_string()) else {
            return false;
        };
        if follow {
            c.followers.insert(me.clone());
        } else {
            c.followers.remove(me);
        }
        true
    }

    /// The channels `me` follows or owns.
    pub fn channels_of(&self, me: &Jid) -> Vec<ChannelInfo> {
        self.channels
            .iter()
            .filter(|(_, c)| c.followers.contains(me) || &c.owner == me)
            .map(|(jid, c)| Self::channel_info(me, jid, c))
            .collect()
    }

    /// One channel.
    pub fn channel(&self, me: &Jid, channel: &Jid) -> Option<ChannelInfo> {
        let key = channel.to_string();
        self.channels
            .get(&key)
            .map(|c| Self::channel_info(me, &key, c))
    }

    /// Whether `me` may post into `channel` and who receives it: the owner posts, to its
    /// followers. A channel this network does not know is taken as one the session owns
    /// elsewhere (its posts go nowhere else).
    pub fn channel_send(&self, me: &Jid, channel: &Jid) -> Result<Vec<Jid>, EngineError> {
        match self.channels.get(&channel.to_string()) {
            None => Ok(Vec::new()),
            Some(c) if &c.owner == me => Ok(c.followers.iter().cloned().collect()),
            Some(_) => Err(EngineError::Permanent(format!(
                "only the channel's owner can post in {channel}"
            ))),
        }
    }
}

fn set_role(g: &mut Group, jid: &Jid, role: ParticipantRole) {
    if let Some(p) = g.info.participants.iter_mut().find(|p| &p.jid == jid) {
        p.role = role;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jid(n: u32) -> Jid {
        Jid::parse(&format!("1555010{n:04}@s.whatsapp.net")).unwrap()
    }

    fn reach(j: &Jid) -> Reach {
        match j.user() {
            "15550109999" => Reach::NotOnWhatsapp,
            "15550108888" => Reach::PrivacyRestricted,
            _ => Reach::Ok,
        }
    }

    #[test]
    fn participants_get_one_outcome_each_and_members_hear_of_it() {
        let mut w = World::default();
        let (me, b, absent, private) = (jid(1), jid(2), jid(9999), jid(8888));
        let (info, results, notices) = w.create(
            &me,
            "Team",
            &[b.clone(), absent.clone(), private.clone()],
            1,
            reach,
        );
        let outcomes: Vec<_> = results.iter().map(|r| r.outcome).collect();
        assert_eq!(
            outcomes,
            [
                ParticipantOutcome::Added,
                ParticipantOutcome::NotOnWhatsapp,
                ParticipantOutcome::PrivacyRestricted
            ]
        );
        assert_eq!(info.participants.len(), 2);
        let joined: Vec<_> = notices
            .iter()
            .filter(|(_, e)| e.kind == GroupEventKind::Joined)
            .map(|(to, _)| to.clone())
            .collect();
        assert_eq!(joined, [me.clone(), b.clone()]);

        // A plain member is refused; the creator cannot be demoted.
        let refused = w.participants(&b, &info.jid, ParticipantAction::Add, &[jid(3)], reach);
        assert!(matches!(refused, Err(EngineError::Conflict(m)) if m.contains("only an admin")));
        let (r, _) = w
            .participants(
                &me,
                &info.jid,
                ParticipantAction::Promote,
                std::slice::from_ref(&b),
                reach,
            )
            .unwrap();
        assert_eq!(r[0].outcome, ParticipantOutcome::Promoted);
        let (r, _) = w
            .participants(
                &b,
                &info.jid,
                ParticipantAction::Demote,
                std::slice::from_ref(&me),
                reach,
            )
            .unwrap();
        assert_eq!(r[0].outcome, ParticipantOutcome::NotAllowed);
    }

    #[test]
    fn invites_resolve_join_and_are_revoked_by_a_reset() {
        let mut w = World::default();
        let (me, c) = (jid(1), jid(3));
        let (info, _, _) = w.create(&me, "Open", &[], 1, reach);
        let code = w.invite(&me, &info.jid, false).unwrap();
        assert_eq!(
            w.invite(&me, &info.jid, false).unwrap(),
            code,
            "stable until reset"
        );
        assert_eq!(w.preview(&code).unwrap().size, 1);
        let (joined, notices) = w.accept(&c, &code).unwrap().unwrap();
        assert_eq!(joined, info.jid);
        assert!(
            notices
                .iter()
                .any(|(to, e)| to == &me && e.kind == GroupEventKind::Participants)
        );
        assert!(matches!(w.accept(&c, &code), Err(EngineError::Conflict(_))));
        let fresh = w.invite(&me, &info.jid, true).unwrap();
        assert_ne!(fresh, code);
        assert!(w.preview(&code).is_none());
        // The last admin leaving hands the group to the oldest member.
        w.leave(&me, &info.jid).unwrap();
        assert_eq!(
            w.group_of(&c, &info.jid).unwrap().role(&c),
            Some(ParticipantRole::Admin)
        );
    }
}
