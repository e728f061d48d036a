//! Wharf's domain: ids, phone numbers, sessions, events, keys and the engine contract.
//! Nothing here performs I/O; every other crate builds on these types.

pub mod engine;
pub mod event;
pub mod id;
pub mod jid;
pub mod keys;
pub mod message;
pub mod phone;
pub mod seal;
pub mod session;
pub mod social;
pub mod time;

pub use engine::{Capabilities, Engine, EngineError, EngineKind, EngineSink, EngineUpdate};
pub use event::{Event, EventType};
pub use id::{
    AccountId, AgentId, AttemptId, BroadcastId, ContactId, DeliveryId, EventId, Id, JobId,
    MessageId, OperationId, PhoneNumberId, RequestId, SandboxId, SessionId, TemplateId, WebhookId,
};
pub use jid::{Jid, JidError};
pub use keys::{KeyKind, NewToken, TokenHash};
pub use message::ProviderId;
pub use phone::{Phone, PhoneError};
pub use seal::{SealError, Sealer};
pub use session::{OperationStatus, SessionSettings, SessionStatus};
