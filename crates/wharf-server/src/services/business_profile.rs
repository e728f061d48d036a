//! The WhatsApp Business profile of a number (Zernio Business API): through Graph on cloud
//! sessions, stored by Wharf on emulator sessions, refused on web sessions (the web engine
//! cannot read or set it). The seed's limits are checked first on every engine, so each
//! violation is a 400 naming its field and nothing reaches Graph.

use std::sync::Arc;

use serde_json::{Map, Value, json};
use wharf_core::{EngineError, EngineKind, time::Clock};
use wharf_engines::cloud::CloudError;
use wharf_store::Store;

use super::{Caller, CloudService, crm::whatsapp_account};
use crate::ServiceError;

/// Longest `about`.
pub const MAX_ABOUT: usize = 139;
/// Longest `description`.
pub const MAX_DESCRIPTION: usize = 512;
/// Longest `address`.
pub const MAX_ADDRESS: usize = 256;
/// Longest `email`.
pub const MAX_EMAIL: usize = 128;
/// Most `websites`.
pub const MAX_WEBSITES: usize = 2;
/// Longest website URL.
pub const MAX_WEBSITE: usize = 256;

/// Meta's business categories (`vertical`).
pub const VERTICALS: [&str; 24] = [
    "UNDEFINED",
    "OTHER",
    "AUTO",
    "BEAUTY",
    "APPAREL",
    "EDU",
    "ENTERTAIN",
    "EVENT_PLAN",
    "FINANCE",
    "GROCERY",
    "GOVT",
    "HOTEL",
    "HEALTH",
    "NONPROFIT",
    "PROF_SERVICES",
    "RETAIL",
    "TRAVEL",
    "RESTAURANT",
    "NOT_A_BIZ",
    "ALCOHOL",
    "ONLINE_GAMBLING",
    "PHYSICAL_GAMBLING",
    "OTC_DRUGS",
    "MATRIMONY_SERVICE",
];

/// A business profile in Graph's field names (absent fields are `None`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BusinessProfile {
    pub about: Option<String>,
    pub address: Option<String>,
    pub description: Option<String>,
    pub email: Option<String>,
    pub profile_picture_url: Option<String>,
    pub websites: Vec<String>,
    pub vertical: Option<String>,
}

impl BusinessProfile {
    fn from_graph(v: &Value) -> Self {
        let text = |k: &str| v[k].as_str().map(str::to_owned);
        Self {
            about: text("about"),
            address: text("address"),
            description: text("description"),
            email: text("email"),
            profile_picture_url: text("profile_picture_url"),
            websites: v["websites"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|w| w.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default(),
            vertical: text("vertical"),
        }
    }
}

/// A change: `None` leaves a field alone.
#[derive(Debug, Clone, Default)]
pub struct ProfileUpdate {
    pub about: Option<String>,
    pub address: Option<String>,
    pub description: Option<String>,
    pub email: Option<String>,
    pub websites: Option<Vec<String>>,
    pub vertical: Option<String>,
    pub profile_picture_handle: Option<String>,
}

/// The business profile service.
pub struct BusinessProfileService {
    store: Store,
    cloud: Arc<CloudService>,
    clock: Clock,
}

fn too_long(field: &str, max: usize) -> ServiceError {
    ServiceError::invalid(field, format!("must be at most {max} characters"))
}

fn is_http_url(u: &str) -> bool {
    let rest = u
        .strip_prefix("https://")
        .or_else(|| u.strip_prefix("http://"));
    rest.is_some_and(|r| {
        let host = r.split(['/', '?', '#']).next().unwrap_or("");
        !host.is_empty() && !u.contains(char::is_whitespace)
    })
}

/// Checks `u` against the seed's limits; returns the fields to send, in Graph's names.
fn checked(u: &ProfileUpdate) -> Result<Map<String, Value>, ServiceError> {
    let mut out = Map::new();
    let len = |s: &str| s.chars().count();
    if let Some(a) = &u.about {
        if a.trim().is_empty() {
            return Err(ServiceError::invalid("about", "must not be empty"));
        }
        if len(a) > MAX_ABOUT {
            return Err(too_long("about", MAX_ABOUT));
        }
        out.insert("about".into(), json!(a));
    }
    if let Some(a) = &u.address {
        if len(a) > MAX_ADDRESS {
            return Err(too_long("address", MAX_ADDRESS));
        }
        out.insert("address".into(), json!(a));
    }
    if let Some(d) = &u.description {
        if len(d) > MAX_DESCRIPTION {
            return Err(too_long("description", MAX_DESCRIPTION));
        }
        out.insert("description".into(), json!(d));
    }
    if let Some(e) = &u.email {
        if len(e) > MAX_EMAIL {
            return Err(too_long("email", MAX_EMAIL));
        }
        if !e.is_empty() && !super::crm::is_email(e) {
            return Err(ServiceError::invalid("email", "must be an email address"));
        }
        out.insert("email".into(), json!(e));
    }
    if let Some(w) = &u.websites {
        if w.len() > MAX_WEBSITES {
            return Err(ServiceError::invalid(
                "websites",
                format!(
                    "must hold at most {MAX_WEBSITES} websites (has {})",
                    w.len()
                ),
            ));
        }
        for (i, url) in w.iter().enumerate() {
            if !is_http_url(url) || len(url) > MAX_WEBSITE {
                return Err(ServiceError::invalid(
                    format!("websites[{i}]"),
                    format!("must be an http(s) URL of at most {MAX_WEBSITE} characters"),
                ));
            }
        }
        out.insert("websites".into(), json!(w));
    }
    if let Some(v) = &u.vertical {
        if !VERTICALS.contains(&v.as_str()) {
            return Err(ServiceError::invalid(
                "vertical",
                format!("must be one of: {}", VERTICALS.join(", ")),
            ));
        }
        out.insert("vertical".into(), json!(v));
    }
    if let Some(h) = &u.profile_picture_handle {
        if h.trim().is_empty() || len(h) > 4096 {
            return Err(ServiceError::invalid(
                "profilePictureHandle",
                "must be the handle of a resumable upload",
            ));
        }
        out.insert("profile_picture_handle".into(), json!(h));
    }
    Ok(out)
}

/// A failed Graph call of a business operation as a service error: Graph's refusal is
/// permanent (400 with Meta's words), an outage is transient (503).
pub(crate) fn cloud_error(e: CloudError) -> ServiceError {
    match e {
        CloudError::Graph(g) => ServiceError::Engine(g.to_engine_error(0)),
        CloudError::Engine(e) => ServiceError::Engine(e),
    }
}

/// The web engine exposes no business profile yet: the refusal names the field at fault
/// (the first one given, or `accountId` for a read).
fn web_unsupported(field: &str, what: &str) -> ServiceError {
    ServiceError::invalid_with(
        "unsupported_by_engine",
        field,
        format!(
            "the web engine cannot {what} the business profile; use a cloud or emulator session"
        ),
    )
}

impl BusinessProfileService {
    /// The service.
    pub fn new(store: Store, cloud: Arc<CloudService>, clock: Clock) -> Self {
        Self {
            store,
            cloud,
            clock,
        }
    }

    fn engine(&self) -> Result<&Arc<wharf_engines::cloud::CloudEngine>, ServiceError> {
        self.cloud.engine().ok_or_else(|| {
            ServiceError::Engine(EngineError::Transient(
                "the cloud engine is not configured on this server".into(),
            ))
        })
    }

    /// The profile of the number `account_id` names.
    pub async fn get(
        &self,
        caller: &Caller,
        account_id: Option<&str>,
    ) -> Result<BusinessProfile, ServiceError> {
        let session = whatsapp_account(&self.store, caller, account_id).await?;
        match session.engine {
            EngineKind::Cloud => {
                let v = self
                    .engine()?
                    .business_profile(session.id)
                    .await
                    .map_err(cloud_error)?;
                Ok(BusinessProfile::from_graph(&v))
            }
            EngineKind::Emulator => Ok(self
                .store
                .business_profile(caller.account_id, session.id)
                .await?
                .map(|v| BusinessProfile::from_graph(&v))
                .unwrap_or_default()),
            EngineKind::Web => Err(web_unsupported("accountId", "read")),
        }
    }

    /// Changes the given fields of the profile.
    pub async fn update(
        &self,
        caller: &Caller,
        account_id: Option<&str>,
        update: ProfileUpdate,
    ) -> Result<(), ServiceError> {
        let session = whatsapp_account(&self.store, caller, account_id).await?;
        let fields = checked(&update)?;
        match session.engine {
            EngineKind::Cloud => self
                .engine()?
                .update_business_profile(session.id, &Value::Object(fields))
                .await
                .map_err(cloud_error),
            EngineKind::Emulator => {
                if update.profile_picture_handle.is_some() {
                    return Err(ServiceError::invalid(
                        "profilePictureHandle",
                        "the emulator has no resumable uploads, so it cannot set a profile picture",
                    ));
                }
                Ok(self
                    .store
                    .merge_business_profile(
                        caller.account_id,
                        session.id,
                        &fields,
                        self.clock.now_millis(),
                    )
                    .await?)
            }
            EngineKind::Web => {
                let field = fields
                    .keys()
                    .next()
                    .map_or("accountId", |k| match k.as_str() {
                        "profile_picture_handle" => "profilePictureHandle",
                        other => other,
                    });
                Err(web_unsupported(field, "set"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_limit_names_its_field() {
        let field_of = |u: ProfileUpdate| match checked(&u) {
            Err(ServiceError::Invalid { errors, .. }) => errors.keys().next().cloned(),
            _ => None,
        };
        let about = ProfileUpdate {
            about: Some("a".repeat(140)),
            ..Default::default()
        };
        assert_eq!(field_of(about).as_deref(), Some("about"));
        let sites = ProfileUpdate {
            websites: Some(vec!["https://a.example".into(); 3]),
            ..Default::default()
        };
        assert_eq!(field_of(sites).as_deref(), Some("websites"));
        let vertical = ProfileUpdate {
            vertical: Some("SHOPS".into()),
            ..Default::default()
        };
        assert_eq!(field_of(vertical).as_deref(), Some("vertical"));
        let fine = ProfileUpdate {
            about: Some("a".repeat(139)),
            description: Some("d".repeat(512)),
            ..Default::default()
        };
        assert!(checked(&fine).is_ok());
    }
}
