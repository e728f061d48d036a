//! The emulator: an in-process simulated WhatsApp network. It behaves like a phone and its
//! linked device would, through the same [`Engine`] contract as the real engines: starting
//! an unlinked session produces a real-format QR payload and waits for a scan; starting a
//! linked one reconnects without a QR; stop keeps the link; logout removes it.
//!
//! The scan itself is the emulator's control surface (`/emulator/sessions/{id}/scan` in the
//! server), standing in for a person pointing their phone at the QR.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, Weak},
};

use async_trait::async_trait;
use base64::{Engine as _, engine::general_purpose::STANDARD};
use rand::RngCore;
use wharf_core::{
    Capabilities, Engine, EngineError, EngineKind, EngineSink, EngineUpdate, Phone, SessionId,
    engine::EngineSession,
};

/// What the emulator knows of a session it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Running {
    /// Waiting for a scan of `qr`; `phone` is the number the session expects, if set.
    Pairing { qr: String, phone: Option<Phone> },
    /// Online as `phone`.
    Online { phone: Phone },
}

/// The emulator engine.
pub struct Emulator {
    sink: Weak<dyn EngineSink>,
    sessions: Mutex<HashMap<SessionId, Running>>,
}

impl Emulator {
    /// An emulator reporting to `sink`. The sink is held weakly: it usually owns the engine.
    pub fn new(sink: Weak<dyn EngineSink>) -> Self {
        Self {
            sink,
            sessions: Mutex::new(HashMap::new()),
        }
    }

    fn sink(&self) -> Result<Arc<dyn EngineSink>, EngineError> {
        self.sink
            .upgrade()
            .ok_or_else(|| EngineError::Transient("the server is shutting down".into()))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<SessionId, Running>> {
        // A poisoned map only means another thread panicked mid-update of plain data.
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A person scans the session's QR with the phone `phone` (or the number the session was
    /// created for, or a made-up test number). Fails unless the session is waiting for a scan,
    /// or when the phone differs from the number the session was created for.
    pub async fn scan(
        &self,
        session: SessionId,
        phone: Option<Phone>,
    ) -> Result<Phone, EngineError> {
        let phone = {
            let mut sessions = self.lock();
            let Some(Running::Pairing {
                phone: expected, ..
            }) = sessions.get(&session)
            else {
                return Err(EngineError::Conflict(
                    "the session is not waiting for a QR scan".into(),
                ));
            };
            let phone = match (phone, expected) {
                (Some(given), Some(expected)) if &given != expected => {
                    return Err(EngineError::Conflict(format!(
                        "the session is for {expected}; a scan from {given} would link the wrong number"
                    )));
                }
                (Some(given), _) => given,
                (None, Some(expected)) => expected.clone(),
                (None, None) => test_number(session),
            };
            sessions.insert(
                session,
                Running::Online {
                    phone: phone.clone(),
                },
            );
            phone
        };
        self.sink()?
            .update(
                session,
                EngineUpdate::Connected {
                    phone: phone.clone(),
                },
            )
            .await?;
        Ok(phone)
    }

    /// The phone logs the linked device out (as "Log out" on the phone does).
    pub async fn unlink_from_phone(&self, session: SessionId) -> Result<(), EngineError> {
        if self.lock().remove(&session).is_none() {
            return Err(EngineError::Conflict("the session is not running".into()));
        }
        self.sink()?
            .update(
                session,
                EngineUpdate::LoggedOut {
                    reason: "logged out from the phone".into(),
                },
            )
            .await
    }
}

/// A stable, plausible US test number derived from the session id (555 numbers are fictional).
fn test_number(session: SessionId) -> Phone {
    let digits: u64 = session
        .to_string()
        .bytes()
        .fold(7u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
    // Always 11 digits behind country code 1, so it always parses.
    Phone::parse(&format!("+1555{:07}", digits % 10_000_000))
        .expect("+1555 and 7 digits is a valid number")
}

/// A QR payload in WhatsApp Web's format: `ref,noise public key,identity key,adv secret`.
fn qr_payload() -> String {
    let part = |len: usize| {
        let mut bytes = vec![0u8; len];
        rand::rng().fill_bytes(&mut bytes);
        STANDARD.encode(bytes)
    };
    format!("2@{},{},{},{}", part(48), part(32), part(32), part(32))
}

#[async_trait]
impl Engine for Emulator {
    fn kind(&self) -> EngineKind {
        EngineKind::Emulator
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities { qr_pairing: true }
    }

    async fn start(&self, session: &EngineSession) -> Result<(), EngineError> {
        let update = {
            let mut sessions = self.lock();
            if session.paired {
                let phone = session
                    .phone
                    .clone()
                    .unwrap_or_else(|| test_number(session.id));
                sessions.insert(
                    session.id,
                    Running::Online {
                        phone: phone.clone(),
                    },
                );
                EngineUpdate::Connected { phone }
            } else {
                let qr = qr_payload();
                sessions.insert(
                    session.id,
                    Running::Pairing {
                        qr: qr.clone(),
                        phone: session.phone.clone(),
                    },
                );
                EngineUpdate::Qr { code: qr }
            }
        };
        self.sink()?.update(session.id, update).await
    }

    async fn stop(&self, session: SessionId) -> Result<(), EngineError> {
        self.lock().remove(&session);
        Ok(())
    }

    async fn logout(&self, session: SessionId) -> Result<(), EngineError> {
        self.lock().remove(&session);
        Ok(())
    }
}

#[cfg(test)]
mod tests;
