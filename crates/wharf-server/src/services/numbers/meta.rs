//! Meta's registration of an account's number: `request-code` and `verify` run Graph's
//! `POST /{id}/request_code` and `POST /{id}/verify_code` on the number's Meta
//! pre-verification id, with the Cloud API credentials of one of the account's cloud
//! sessions, and record when the verification was made and when it expires (90 days on).

use wharf_core::{EngineError, EngineKind, SessionId};
use wharf_engines::cloud::CodeMethod;
use wharf_store::{NumberStatus, PhoneNumberRow};

use super::{NumberService, gone};
use crate::{
    ServiceError,
    services::{Caller, business_profile::cloud_error, crm::whatsapp_account},
};

/// How long a verification holds.
pub const VERIFICATION_MS: i64 = 90 * 24 * 3_600_000;
/// The language Meta's code message is sent in.
const CODE_LANGUAGE: &str = "en_US";

/// Whether the number's Meta verification holds at `now`.
pub fn verified(n: &PhoneNumberRow, now: i64) -> bool {
    n.meta_preverified_id.is_some()
        && n.meta_verification_status.as_deref() == Some("verified")
        && n.meta_verification_expires_at.is_some_and(|e| e > now)
}

/// A verification code's delivery, from the body's `method` (SMS when absent).
pub fn code_method(method: Option<&str>) -> Result<CodeMethod, ServiceError> {
    match method {
        None | Some("SMS") => Ok(CodeMethod::Sms),
        Some("VOICE") => Ok(CodeMethod::Voice),
        Some(_) => Err(ServiceError::invalid("method", "must be SMS or VOICE")),
    }
}

impl NumberService {
    /// The number, if Meta's registration can run on it: not released, pre-verified.
    async fn registrable(
        &self,
        caller: &Caller,
        id: &str,
    ) -> Result<(PhoneNumberRow, String), ServiceError> {
        let row = self.held(caller, id).await?;
        if matches!(row.status, NumberStatus::Released | NumberStatus::Releasing) {
            return Err(gone(&row));
        }
        let graph_id = row.meta_preverified_id.clone().ok_or_else(|| {
            ServiceError::conflict(
                "not_preverified",
                "Number has not been added to Meta pre-verified pool",
            )
        })?;
        Ok((row, graph_id))
    }

    /// The cloud session whose credentials reach Meta: `account_id` when given (a cloud
    /// session of the caller's), else the caller's oldest cloud session.
    async fn credentials(
        &self,
        caller: &Caller,
        account_id: Option<&str>,
    ) -> Result<SessionId, ServiceError> {
        if account_id.is_some() {
            let session = whatsapp_account(&self.store, caller, account_id).await?;
            if session.engine != EngineKind::Cloud {
                return Err(ServiceError::invalid(
                    "accountId",
                    "must be a Cloud API session: its credentials register the number with Meta",
                ));
            }
            return Ok(session.id);
        }
        self.store
            .first_cloud_session(caller.account_id)
            .await?
            .ok_or_else(|| {
                ServiceError::invalid(
                    "accountId",
                    "the account has no Cloud API session whose credentials could register the number with Meta; create one first",
                )
            })
    }

    /// After a verification was not recorded: the refusal of a number released (or being
    /// released) while Meta was called; else (a verification recorded meanwhile) nothing.
    async fn still_held(
        &self,
        caller: &Caller,
        id: wharf_core::PhoneNumberId,
    ) -> Result<(), ServiceError> {
        match self.store.phone_number(caller.account_id, id).await? {
            None => Err(super::not_found()),
            Some(row) if matches!(row.status, NumberStatus::Released | NumberStatus::Releasing) => {
                Err(gone(&row))
            }
            Some(_) => Ok(()),
        }
    }

    fn engine(&self) -> Result<&std::sync::Arc<wharf_engines::cloud::CloudEngine>, ServiceError> {
        self.cloud.engine().ok_or_else(|| {
            ServiceError::Engine(EngineError::Transient(
                "the cloud engine is not configured on this server".into(),
            ))
        })
    }

    /// Asks Meta to send the number a verification code.
    pub async fn request_code(
        &self,
        caller: &Caller,
        id: &str,
        method: CodeMethod,
        account_id: Option<&str>,
    ) -> Result<(), ServiceError> {
        let (mut row, graph_id) = self.registrable(caller, id).await?;
        let session = self.credentials(caller, account_id).await?;
        self.engine()?
            .request_code_for(session, Some(graph_id.as_str()), method, CODE_LANGUAGE)
            .await
            .map_err(cloud_error)?;
        let now = self.clock.now_millis();
        // A verification that still holds stays recorded until the new code is entered.
        if !verified(&row, now) {
            row.meta_verification_status = Some("code_requested".into());
            // Only on a number still held: a release may have begun meanwhile.
            if !self.store.record_verification(&row, now).await? {
                self.still_held(caller, row.id).await?;
            }
        }
        Ok(())
    }

    /// Enters the code Meta sent; a verification that still holds is answered as it is.
    /// Returns the number and whether it was verified just now.
    pub async fn verify(
        &self,
        caller: &Caller,
        id: &str,
        code: Option<&str>,
        account_id: Option<&str>,
    ) -> Result<(PhoneNumberRow, bool), ServiceError> {
        let code = code
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .ok_or_else(|| ServiceError::invalid("code", "code is required"))?;
        if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ServiceError::invalid("code", "must be the 6-digit code"));
        }
        let (mut row, graph_id) = self.registrable(caller, id).await?;
        if verified(&row, self.clock.now_millis()) {
            return Ok((row, false));
        }
        let session = self.credentials(caller, account_id).await?;
        self.engine()?
            .verify_code_for(session, Some(graph_id.as_str()), code)
            .await
            .map_err(cloud_error)?;
        let now = self.clock.now_millis();
        row.meta_verification_status = Some("verified".into());
        row.meta_verified_at = Some(now);
        row.meta_verification_expires_at = Some(now + VERIFICATION_MS);
        row.updated_at = now;
        // Only on a number still held: a release may have begun meanwhile.
        if !self.store.record_verification(&row, now).await? {
            self.still_held(caller, row.id).await?;
        }
        Ok((row, true))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_are_sms_or_voice() {
        assert_eq!(code_method(None).unwrap(), CodeMethod::Sms);
        assert_eq!(code_method(Some("VOICE")).unwrap(), CodeMethod::Voice);
        assert!(code_method(Some("sms")).is_err());
        assert!(code_method(Some("EMAIL")).is_err());
    }
}
