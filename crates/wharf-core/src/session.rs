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
