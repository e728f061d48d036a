//! Conversions of the crate's contact, group and channel types to Wharf's: group metadata,
//! per-participant answers, channel metadata, group notifications (as group events) and
//! address book sync actions. Identities are phone JIDs wherever WhatsApp names the number,
//! the LID otherwise, so one person is one contact.

use serde_json::{Value, json};
use wharf_core::{
    EngineUpdate, Jid,
    social::{
        ChannelInfo, GroupEvent, GroupEventKind, GroupInfo, GroupSettings, Participant,
        ParticipantAction, ParticipantOutcome, ParticipantResult, ParticipantRole,
    },
};
use whatsapp_rust::{
    GroupMetadata, Jid as WaJid, NewsletterMetadata, NewsletterRole, ParticipantChangeResponse,
    ParticipantType,
    types::events::{ContactUpdate, Event, GroupUpdate, PushNameUpdate},
    wacore::stanza::groups::{GroupNotificationAction as A, GroupParticipantInfo},
};

use super::from_wa_jid;
use crate::web::port::{ContactChange, PortEvent};

/// The identity of someone WhatsApp names by `jid`, with the number `pn` when it gave one:
/// the phone JID when known, else the LID.
pub fn identity(jid: &WaJid, pn: Option<&WaJid>) -> Option<Jid> {
    match pn {
        Some(pn) if jid.is_lid() && pn.is_pn() => from_wa_jid(pn),
        _ => from_wa_jid(jid),
    }
}

fn role(t: ParticipantType) -> ParticipantRole {
    match t {
        ParticipantType::Member => ParticipantRole::Member,
        ParticipantType::Admin => ParticipantRole::Admin,
        ParticipantType::SuperAdmin => ParticipantRole::Superadmin,
    }
}

/// A group as Wharf shows it; `None` for a JID Wharf does not model.
pub fn group_info(meta: &GroupMetadata) -> Option<GroupInfo> {
    let participants = meta
        .participants
        .iter()
        .filter_map(|p| {
            Some(Participant {
                jid: identity(&p.jid, p.phone_number.as_ref())?,
                role: role(p.participant_type),
            })
        })
        .collect();
    let owner = meta
        .creator
        .as_ref()
        .and_then(|c| identity(c, meta.creator_pn.as_ref()));
    Some(GroupInfo {
        jid: from_wa_jid(&meta.id)?,
        subject: meta.subject.clone(),
        description: meta.description.clone().filter(|d| !d.is_empty()),
        owner,
        created_at: meta
            .creation_time
            .map_or(0, |s| i64::try_from(s).unwrap_or(0).saturating_mul(1000)),
        participants,
        settings: GroupSettings {
            announce: meta.is_announcement,
            locked: meta.is_locked,
            ephemeral_seconds: meta.ephemeral.and_then(|e| e.expiration).unwrap_or(0),
            join_approval: meta.membership_approval,
        },
    })
}

/// What WhatsApp's per-participant answer means. WhatsApp's codes: 403 their privacy
/// settings (an invite is sent instead), 409 already a member, 404 no account (add) or not
/// a member; anything else (408 left recently, a full group, the creator) is not allowed.
pub fn participant_outcome(
    action: ParticipantAction,
    error: Option<&str>,
    in_group_before: Option<bool>,
) -> ParticipantOutcome {
    match (action, error) {
        (ParticipantAction::Add, None) => ParticipantOutcome::Added,
        (ParticipantAction::Remove, None) => ParticipantOutcome::Removed,
        (ParticipantAction::Promote, None) => ParticipantOutcome::Promoted,
        (ParticipantAction::Demote, None) => ParticipantOutcome::Demoted,
        (_, Some("403")) if action == ParticipantAction::Add => {
            ParticipantOutcome::PrivacyRestricted
        }
        (ParticipantAction::Add, Some("409")) => ParticipantOutcome::AlreadyInGroup,
        (ParticipantAction::Add, Some("404")) => ParticipantOutcome::NotOnWhatsapp,
        (_, Some("404")) => ParticipantOutcome::NotInGroup,
        (_, Some(_)) if in_group_before == Some(false) => ParticipantOutcome::NotInGroup,
        (_, Some(_)) => ParticipantOutcome::NotAllowed,
    }
}

/// One participant's result; the JID answered is the one asked for when WhatsApp answers
/// with the other form (a LID for a number).
pub fn participant_result(
    action: ParticipantAction,
    answer: &ParticipantChangeResponse,
    asked: &[Jid],
) -> Option<ParticipantResult> {
    let jid = identity(&answer.jid, answer.phone_number.as_ref())?;
    let jid = asked
        .iter()
        .find(|a| **a == jid || a.user() == answer.jid.user.as_str())
        .cloned()
        .unwrap_or(jid);
    Some(ParticipantResult {
        outcome: participant_outcome(action, answer.error.as_deref(), None),
        jid,
    })
}

/// A channel as Wharf shows it; `None` for a JID Wharf does not model.
pub fn channel_info(meta: &NewsletterMetadata) -> Option<ChannelInfo> {
    let role = meta.role.as_ref();
    Some(ChannelInfo {
        jid: from_wa_jid(&meta.jid)?,
        name: meta.name.clone(),
        description: meta.description.clone().filter(|d| !d.is_empty()),
        followers: meta.subscriber_count,
        following: matches!(
            role,
            Some(NewsletterRole::Subscriber | NewsletterRole::Owner | NewsletterRole::Admin)
        ),
        owner: matches!(role, Some(NewsletterRole::Owner)),
    })
}

/// The session's own identities (phone JID, LID) as the crate knows them.
#[derive(Debug, Clone, Default)]
pub struct Own {
    pub pn: Option<WaJid>,
    pub lid: Option<WaJid>,
}

impl Own {
    fn is(&self, jid: &WaJid) -> bool {
        [&self.pn, &self.lid]
            .into_iter()
            .flatten()
            .any(|me| me.user == jid.user && me.is_lid() == jid.is_lid())
    }

    fn among(&self, people: &[GroupParticipantInfo]) -> bool {
        people
            .iter()
            .any(|p| self.is(&p.jid) || p.phone_number.as_ref().is_some_and(|n| self.is(n)))
    }
}

fn people(list: &[GroupParticipantInfo]) -> Vec<Jid> {
    list.iter()
        .filter_map(|p| identity(&p.jid, p.phone_number.as_ref()))
        .collect()
}

/// A group notification as the group event the session records, as the emulator reports
/// them: the session's own joining and leaving are `group.joined` / `group.left`, other
/// members' changes `group.participants`, subject and settings `group.updated`. `None` for
/// notifications Wharf has no event for (community links, join requests, growth locks).
pub fn group_event(update: &GroupUpdate, own: &Own) -> Option<GroupEvent> {
    let group = from_wa_jid(&update.group_jid)?;
    let by = update
        .participant
        .as_ref()
        .and_then(|p| identity(p, update.participant_pn.as_ref()));
    let by_me = update.participant.as_ref().is_some_and(|p| own.is(p));
    let event = |kind, detail: Value| {
        Some(GroupEvent {
            kind,
            group: group.clone(),
            detail,
        })
    };
    let members = |action: &str, list: &[GroupParticipantInfo]| {
        event(
            GroupEventKind::Participants,
            json!({ "action": action, "participants": people(list), "by": by }),
        )
    };
    let updated = |changes: Value| {
        event(
            GroupEventKind::Updated,
            json!({ "changes": changes, "by": by }),
        )
    };
    match &update.action {
        A::Add {
            participants,
            reason,
        } if own.among(participants) => {
            let invited = by_me || reason.as_deref() == Some("invite");
            event(
                GroupEventKind::Joined,
                json!({ "by": by, "reason": if invited { "invite" } else { "added" } }),
            )
        }
        A::Add { participants, .. } => {
            let joined_alone = participants.len() == 1
                && update
                    .participant
                    .as_ref()
                    .is_some_and(|p| p.user == participants[0].jid.user);
            members(if joined_alone { "join" } else { "add" }, participants)
        }
        A::Remove { participants, .. } if own.among(participants) => event(
            GroupEventKind::Left,
            json!({ "reason": if by_me { "left" } else { "removed" }, "by": by }),
        ),
        A::Remove { participants, .. } => {
            let left_alone = participants.len() == 1
                && update
                    .participant
                    .as_ref()
                    .is_some_and(|p| p.user == participants[0].jid.user);
            members(if left_alone { "leave" } else { "remove" }, participants)
        }
        A::Promote { participants } => members("promote", participants),
        A::Demote { participants } => members("demote", participants),
        A::Subject { subject, .. } => updated(json!({ "subject": subject })),
        A::Description { description, .. } => updated(json!({ "description": description })),
        A::Locked { .. } => updated(json!({ "locked": true })),
        A::Unlocked => updated(json!({ "locked": false })),
        A::Announce => updated(json!({ "announce": true })),
        A::NotAnnounce => updated(json!({ "announce": false })),
        A::Ephemeral { expiration, .. } => updated(json!({ "ephemeral_seconds": expiration })),
        A::MembershipApprovalMode { enabled } => updated(json!({ "join_approval": enabled })),
        A::Invite { .. } if by_me => event(
            GroupEventKind::Joined,
            json!({ "by": by, "reason": "invite" }),
        ),
        A::Invite { .. } => event(
            GroupEventKind::Participants,
            json!({ "action": "join", "participants": [by], "by": by }),
        ),
        A::Create { raw } => event(
            GroupEventKind::Joined,
            json!({
                "subject": raw
                    .get_optional_child_by_tag(&["group"])
                    .unwrap_or(raw)
                    .attrs()
                    .optional_string("subject")
                    .map(|s| s.into_owned()),
                "by": by,
                "reason": if by_me { "created" } else { "added" },
            }),
        ),
        A::Delete { .. } => event(
            GroupEventKind::Left,
            json!({ "reason": "deleted", "by": by }),
        ),
        _ => None,
    }
}

/// An address book entry from the phone's app-state contact action.
pub fn contact_change(update: &ContactUpdate) -> Option<ContactChange> {
    let action = &update.action;
    let parse = |text: &Option<String>| -> Option<WaJid> { text.as_deref()?.parse().ok() };
    let pn = parse(&action.pn_jid).filter(WaJid::is_pn);
    let lid = parse(&action.lid_jid)
        .filter(WaJid::is_lid)
        .or_else(|| update.jid.is_lid().then(|| update.jid.clone()));
    let pn = pn.or_else(|| update.jid.is_pn().then(|| update.jid.clone()));
    let jid = match (&pn, &lid) {
        (Some(pn), _) => from_wa_jid(pn)?,
        (None, Some(lid)) => from_wa_jid(lid)?,
        (None, None) => return None,
    };
    let name = action
        .full_name
        .clone()
        .or_else(|| action.first_name.clone())
        .filter(|n| !n.trim().is_empty());
    Some(ContactChange {
        jid,
        lid: lid.as_ref().and_then(from_wa_jid),
        name,
        push_name: None,
    })
}

/// A contact's new push name, as a received message showed it.
pub fn push_name_change(update: &PushNameUpdate) -> Option<ContactChange> {
    let info = &update.message.source;
    let alt = info.sender_alt.as_ref();
    let jid = identity(&update.jid, alt)?;
    let lid = [Some(&update.jid), alt]
        .into_iter()
        .flatten()
        .find(|j| j.is_lid())
        .and_then(from_wa_jid);
    let name = update.new_push_name.trim();
    (!name.is_empty()).then(|| ContactChange {
        jid,
        lid,
        name: None,
        push_name: Some(name.to_owned()),
    })
}

/// The contact and group events of the client, as port events (`None` for the others).
pub fn port_event(event: &Event, own: &Own) -> Option<PortEvent> {
    match event {
        Event::GroupUpdate(u) => Some(PortEvent::Updates(vec![EngineUpdate::Group(group_event(
            u, own,
        )?)])),
        Event::ContactUpdate(u) => Some(PortEvent::Contacts(vec![contact_change(u)?])),
        Event::PushNameUpdate(u) => Some(PortEvent::Contacts(vec![push_name_change(u)?])),
        _ => None,
    }
}
