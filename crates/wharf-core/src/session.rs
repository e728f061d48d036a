//! Session statuses, operational settings and operation statuses.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Where a session stands. `pending` means a start was asked for and no engine has picked it
/// up yet; `connecting` means the engine is pairing (QR available) or reconnecting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SessionStatus {
    Pending,
    Connecting,
    Connected,
    Disconnected,
    PendingDeletion,
    Deleted,
}

impl SessionStatus {
    /// Every status, in lifecycle order.
    pub const ALL: [Self; 6] = [
        Self::Pending,
        Self::Connecting,
        Self::Connected,
        Self::Disconnected,
        Self::PendingDeletion,
        Self::Deleted,
    ];

    /// The wire and storage name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Connecting => "connecting",
            Self::Connected => "connected",
            Self::Disconnected => "disconnected",
            Self::PendingDeletion => "pending_deletion",
            Self::Deleted => "deleted",
        }
    }

    /// The status named `text`, if any.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// Whether an engine is (or should be) running for the session.
    pub fn is_running(self) -> bool {
        matches!(self, Self::Pending | Self::Connecting | Self::Connected)
    }

    /// Whether the session is being or has been deleted.
    pub fn is_deleting(self) -> bool {
        matches!(self, Self::PendingDeletion | Self::Deleted)
    }
}

/// The eight operational toggles of a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SessionSettings {
    /// Slow down and space out sends to look less like automation.
    pub account_protection: bool,
    /// Mark incoming messages as read as soon as they arrive.
    pub read_incoming: bool,
    /// Reject incoming voice and video calls.
    pub auto_reject_calls: bool,
    /// Present the session as online at all times.
    pub always_online: bool,
    /// Drop group messages instead of delivering them.
    pub ignore_groups: bool,
    /// Drop status/broadcast list messages.
    pub ignore_broadcasts: bool,
    /// Drop channel (newsletter) messages.
    pub ignore_channels: bool,
    /// Show "typing…" before each outgoing text message.
    pub typing: bool,
    /// The session's own send pace, over its engine's (absent: the engine's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pacing: Option<SessionPacing>,
}

/// How fast one session sends, field by field over its engine's pace (an absent field keeps
/// the engine's value). Honoured by the dispatcher on every engine.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SessionPacing {
    /// Sends per second at most, in any sliding second (1..=1000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_second: Option<u32>,
    /// Per recipient: this many sends in a row (1..=1000) …
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pair_burst: Option<u32>,
    /// … then one per this many milliseconds (1..=86,400,000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pair_interval_ms: Option<u64>,
    /// A random pause of 0 to this many milliseconds before each send (0..=60,000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jitter_ms: Option<u64>,
    /// At most this many sends a day (UTC), 1..=1,000,000; the rest wait for the next day.
    /// 0 removes the engine's cap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub daily_cap: Option<u32>,
}

impl SessionPacing {
    /// `base` with these fields over it.
    pub fn over(&self, base: crate::engine::Pacing) -> crate::engine::Pacing {
        crate::engine::Pacing {
            per_second: self.per_second.unwrap_or(base.per_second),
            pair_burst: self.pair_burst.unwrap_or(base.pair_burst),
            pair_interval_ms: self.pair_interval_ms.unwrap_or(base.pair_interval_ms),
            jitter_ms: self.jitter_ms.unwrap_or(base.jitter_ms),
            daily_cap: match self.daily_cap {
                Some(0) => None,
                Some(cap) => Some(cap),
                None => base.daily_cap,
            },
        }
    }

    /// The first field out of range: `(name, rule)`.
    pub fn check(&self) -> Result<(), (&'static str, &'static str)> {
        let out = |v: Option<u64>, lo: u64, hi: u64| v.is_some_and(|v| v < lo || v > hi);
        if out(self.per_second.map(u64::from), 1, 1000) {
            return Err(("per_second", "must be 1 to 1000"));
        }
        if out(self.pair_burst.map(u64::from), 1, 1000) {
            return Err(("pair_burst", "must be 1 to 1000"));
        }
        if out(self.pair_interval_ms, 1, 86_400_000) {
            return Err(("pair_interval_ms", "must be 1 to 86400000"));
        }
        if out(self.jitter_ms, 0, 60_000) {
            return Err(("jitter_ms", "must be 0 to 60000"));
        }
        if out(self.daily_cap.map(u64::from), 0, 1_000_000) {
            return Err(("daily_cap", "must be 0 (no cap) to 1000000"));
        }
        Ok(())
    }
}

impl Default for SessionSettings {
    fn default() -> Self {
        Self {
            account_protection: true,
            read_incoming: false,
            auto_reject_calls: false,
            always_online: false,
            ignore_groups: false,
            ignore_broadcasts: true,
            ignore_channels: false,
            typing: false,
            pacing: None,
        }
    }
}

/// A partial update of [`SessionSettings`]; absent fields stay as they are.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SessionSettingsPatch {
    pub account_protection: Option<bool>,
    pub read_incoming: Option<bool>,
    pub auto_reject_calls: Option<bool>,
    pub always_online: Option<bool>,
    pub ignore_groups: Option<bool>,
    pub ignore_broadcasts: Option<bool>,
    pub ignore_channels: Option<bool>,
    pub typing: Option<bool>,
    /// Replaces the session's pace (`{}`: back to the engine's).
    pub pacing: Option<SessionPacing>,
}

impl SessionSettings {
    /// These settings with `patch` applied.
    pub fn apply(mut self, patch: &SessionSettingsPatch) -> Self {
        macro_rules! take {
            ($($f:ident),*) => { $( if let Some(v) = patch.$f { self.$f = v; } )* };
        }
        take!(
            account_protection,
            read_incoming,
            auto_reject_calls,
            always_online,
            ignore_groups,
            ignore_broadcasts,
            ignore_channels,
            typing
        );
        if let Some(pacing) = patch.pacing {
            self.pacing = (pacing != SessionPacing::default()).then_some(pacing);
        }
        self
    }
}

/// Progress of a long-running operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OperationStatus {
    Queued,
    Running,
    Succeeded,
    Failed,
}

impl OperationStatus {
    /// The wire and storage name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
        }
    }

    /// The status named `text`, if any.
    pub fn parse(text: &str) -> Option<Self> {
        [Self::Queued, Self::Running, Self::Succeeded, Self::Failed]
            .into_iter()
            .find(|s| s.as_str() == text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_round_trip() {
        for s in SessionStatus::ALL {
            assert_eq!(SessionStatus::parse(s.as_str()), Some(s));
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        assert_eq!(SessionStatus::parse("paired"), None);
    }

    #[test]
    fn patch_changes_only_given_fields() {
        let patch = SessionSettingsPatch {
            typing: Some(true),
            account_protection: Some(false),
            ..Default::default()
        };
        let s = SessionSettings::default().apply(&patch);
        assert!(s.typing && !s.account_protection);
        assert_eq!(
            s.ignore_broadcasts,
            SessionSettings::default().ignore_broadcasts
        );
    }
}
