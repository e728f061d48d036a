//! The fake port's contacts, groups and channels: each request is recorded as a
//! [`SocialCall`] and answered with the next scripted [`SocialAnswer`].

use async_trait::async_trait;
use wharf_core::{
    Jid, Phone,
    social::{
        ChannelInfo, GroupChange, GroupInfo, InvitePreview, ParticipantAction, ParticipantResult,
        Registration, UserInfo,
    },
};

use super::{FakeCall, FakePort};
use crate::web::port::{JoinAnswer, PortError, SocialPort};

/// A contacts, groups or channels request the engine made, with what it sent.
#[derive(Debug, Clone, PartialEq)]
pub enum SocialCall {
    OnWhatsapp(Phone),
    Blocklist,
    SetBlocked(Jid, bool),
    Picture(Jid),
    Groups,
    Group(Jid),
    CreateGroup(String, Vec<Jid>),
    Participants(Jid, ParticipantAction, Vec<Jid>),
    UpdateGroup(Jid, GroupChange),
    InviteCode(Jid, bool),
    LeaveGroup(Jid),
    ResolveInvite(String),
    AcceptInvite(String),
    FollowChannel(Jid, bool),
    Channels,
    Channel(Jid),
    User,
}

/// What the fake WhatsApp answers the next request; a request whose answer does not fit
/// fails (so a test scripting the wrong answer sees it). Without a scripted answer,
/// requests that answer nothing succeed and the others fail.
#[derive(Debug, Clone, PartialEq)]
pub enum SocialAnswer {
    Registration(Registration),
    Jids(Vec<Jid>),
    Picture(Option<String>),
    Groups(Vec<GroupInfo>),
    Group(Option<GroupInfo>),
    Created(GroupInfo, Vec<ParticipantResult>),
    Results(Vec<ParticipantResult>),
    Code(String),
    Preview(Option<InvitePreview>),
    Join(JoinAnswer),
    Found(bool),
    Channels(Vec<ChannelInfo>),
    Channel(Option<ChannelInfo>),
    User(UserInfo),
    /// For requests that answer nothing.
    Done,
    Fail(PortError),
}

impl FakePort {
    /// Scripts the answers to the next contacts, groups and channels requests, in order.
    pub fn answer_social(&self, answers: impl IntoIterator<Item = SocialAnswer>) {
        self.social_answers.lock().unwrap().extend(answers);
    }

    /// The contacts, groups and channels requests made of this client.
    pub fn social_calls(&self) -> Vec<SocialCall> {
        self.calls()
            .into_iter()
            .filter_map(|c| match c {
                FakeCall::Social(s) => Some(s),
                _ => None,
            })
            .collect()
    }

    fn social(&self, call: SocialCall) -> Result<SocialAnswer, PortError> {
        let answer = self.social_answers.lock().unwrap().pop_front();
        let unit = matches!(
            call,
            SocialCall::SetBlocked(..) | SocialCall::UpdateGroup(..) | SocialCall::LeaveGroup(_)
        );
        self.record(FakeCall::Social(call.clone()));
        match answer {
            Some(SocialAnswer::Fail(e)) => Err(e),
            Some(answer) => Ok(answer),
            None if unit => Ok(SocialAnswer::Done),
            None => Err(PortError::Transient(format!(
                "the fake has no answer scripted for {call:?}"
            ))),
        }
    }
}

fn misfit<T>(answer: SocialAnswer) -> Result<T, PortError> {
    Err(PortError::Transient(format!(
        "the scripted answer {answer:?} does not fit the request"
    )))
}

#[async_trait]
impl SocialPort for FakePort {
    async fn on_whatsapp(&self, phone: &Phone) -> Result<Registration, PortError> {
        match self.social(SocialCall::OnWhatsapp(phone.clone()))? {
            SocialAnswer::Registration(r) => Ok(r),
            other => misfit(other),
        }
    }

    async fn blocklist(&self) -> Result<Vec<Jid>, PortError> {
        match self.social(SocialCall::Blocklist)? {
            SocialAnswer::Jids(j) => Ok(j),
            other => misfit(other),
        }
    }

    async fn set_blocked(&self, jid: &Jid, blocked: bool) -> Result<(), PortError> {
        match self.social(SocialCall::SetBlocked(jid.clone(), blocked))? {
            SocialAnswer::Done => Ok(()),
            other => misfit(other),
        }
    }

    async fn picture(&self, jid: &Jid) -> Result<Option<String>, PortError> {
        match self.social(SocialCall::Picture(jid.clone()))? {
            SocialAnswer::Picture(p) => Ok(p),
            other => misfit(other),
        }
    }

    async fn groups(&self) -> Result<Vec<GroupInfo>, PortError> {
        match self.social(SocialCall::Groups)? {
            SocialAnswer::Groups(g) => Ok(g),
            other => misfit(other),
        }
    }

    async fn group(&self, group: &Jid) -> Result<Option<GroupInfo>, PortError> {
        match self.social(SocialCall::Group(group.clone()))? {
            SocialAnswer::Group(g) => Ok(g),
            other => misfit(other),
        }
    }

    async fn create_group(
        &self,
        subject: &str,
        participants: &[Jid],
    ) -> Result<(GroupInfo, Vec<ParticipantResult>), PortError> {
        let call = SocialCall::CreateGroup(subject.to_owned(), participants.to_vec());
        match self.social(call)? {
            SocialAnswer::Created(g, r) => Ok((g, r)),
            other => misfit(other),
        }
    }

    async fn update_participants(
        &self,
        group: &Jid,
        action: ParticipantAction,
        participants: &[Jid],
    ) -> Result<Vec<ParticipantResult>, PortError> {
        let call = SocialCall::Participants(group.clone(), action, participants.to_vec());
        match self.social(call)? {
            SocialAnswer::Results(r) => Ok(r),
            other => misfit(other),
        }
    }

    async fn update_group(&self, group: &Jid, change: &GroupChange) -> Result<(), PortError> {
        match self.social(SocialCall::UpdateGroup(group.clone(), change.clone()))? {
            SocialAnswer::Done => Ok(()),
            other => misfit(other),
        }
    }

    async fn invite_code(&self, group: &Jid, reset: bool) -> Result<String, PortError> {
        match self.social(SocialCall::InviteCode(group.clone(), reset))? {
            SocialAnswer::Code(c) => Ok(c),
            other => misfit(other),
        }
    }

    async fn leave_group(&self, group: &Jid) -> Result<(), PortError> {
        match self.social(SocialCall::LeaveGroup(group.clone()))? {
            SocialAnswer::Done => Ok(()),
            other => misfit(other),
        }
    }

    async fn resolve_invite(&self, code: &str) -> Result<Option<InvitePreview>, PortError> {
        match self.social(SocialCall::ResolveInvite(code.to_owned()))? {
            SocialAnswer::Preview(p) => Ok(p),
            other => misfit(other),
        }
    }

    async fn accept_invite(&self, code: &str) -> Result<JoinAnswer, PortError> {
        match self.social(SocialCall::AcceptInvite(code.to_owned()))? {
            SocialAnswer::Join(j) => Ok(j),
            other => misfit(other),
        }
    }

    async fn follow_channel(&self, channel: &Jid, follow: bool) -> Result<bool, PortError> {
        match self.social(SocialCall::FollowChannel(channel.clone(), follow))? {
            SocialAnswer::Found(f) => Ok(f),
            other => misfit(other),
        }
    }

    async fn channels(&self) -> Result<Vec<ChannelInfo>, PortError> {
        match self.social(SocialCall::Channels)? {
            SocialAnswer::Channels(c) => Ok(c),
            other => misfit(other),
        }
    }

    async fn channel(&self, channel: &Jid) -> Result<Option<ChannelInfo>, PortError> {
        match self.social(SocialCall::Channel(channel.clone()))? {
            SocialAnswer::Channel(c) => Ok(c),
            other => misfit(other),
        }
    }

    async fn user(&self) -> Result<UserInfo, PortError> {
        match self.social(SocialCall::User)? {
            SocialAnswer::User(u) => Ok(u),
            other => misfit(other),
        }
    }
}
