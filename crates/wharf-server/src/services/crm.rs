//! The contacts CRM of the Zernio Business API: contacts of a WhatsApp account (a session),
//! their tags, groups, opt-in state and custom fields; imports, bulk actions and the groups
//! derived from the contacts.

use std::collections::{BTreeMap, HashSet};

use wharf_core::{ContactId, SessionId, SessionStatus, time::Clock};
use wharf_store::{
    ContactPage, ContactQuery, ContactRow, GroupSummary, SessionRow, Store, StoreError,
};

use super::Caller;
use crate::ServiceError;

mod fields;
pub use fields::is_email;
use fields::*;

/// Most contacts one import takes.
pub const MAX_IMPORT: usize = 1000;
/// Most contacts one bulk action or bulk delete names.
pub const MAX_BULK: usize = 500;
/// Largest page of the list (the server's one page-size bound).
pub const MAX_LIMIT: i64 = 100;
/// Longest name, company and group or tag, in characters.
pub const MAX_NAME_CHARS: usize = 256;
/// Longest tag or group name.
pub const MAX_LABEL_CHARS: usize = 64;
/// Most tags (and most groups) on one contact.
pub const MAX_LABELS: usize = 50;
/// Longest notes.
pub const MAX_NOTES_CHARS: usize = 5000;
/// Most custom fields on one contact.
pub const MAX_CUSTOM_FIELDS: usize = 50;
/// Longest custom field value.
pub const MAX_CUSTOM_VALUE_CHARS: usize = 1024;

/// The session a Zernio `accountId` names, if it is one of the caller's live sessions; an
/// unknown, malformed, deleted or foreign id is the same "WhatsApp account not found".
pub(crate) async fn whatsapp_account(
    store: &Store,
    caller: &Caller,
    account_id: Option<&str>,
) -> Result<SessionRow, ServiceError> {
    let text = account_id
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ServiceError::invalid("accountId", "accountId is required"))?;
    let not_found = ServiceError::NotFound("WhatsApp account");
    let Ok(id) = text.parse::<SessionId>() else {
        return Err(not_found);
    };
    if !caller.can_see(id) {
        return Err(not_found);
    }
    match store.get_session(caller.account_id, id).await? {
        Some(s)
            if !matches!(
                s.status,
                SessionStatus::Deleted | SessionStatus::PendingDeletion
            ) =>
        {
            Ok(s)
        }
        _ => Err(not_found),
    }
}

/// A new contact, as the client wrote it (checked by the service).
#[derive(Debug, Clone, Default)]
pub struct ContactInput {
    pub phone: Option<String>,
    pub name: Option<String>,
    pub email: Option<String>,
    pub company: Option<String>,
    pub tags: Option<Vec<String>>,
    pub groups: Option<Vec<String>>,
    pub is_opted_in: Option<bool>,
    pub custom_fields: Option<BTreeMap<String, String>>,
    pub notes: Option<String>,
}

/// A `PUT`: `None` leaves a field alone; `Some(None)` clears an optional one.
#[derive(Debug, Clone, Default)]
pub struct ContactPatch {
    pub name: Option<String>,
    pub email: Option<Option<String>>,
    pub company: Option<Option<String>>,
    pub tags: Option<Vec<String>>,
    pub groups: Option<Vec<String>>,
    pub is_opted_in: Option<bool>,
    pub is_blocked: Option<bool>,
    /// Merged; a `None` value removes the field.
    pub custom_fields: Option<BTreeMap<String, Option<String>>>,
    pub notes: Option<Option<String>>,
}

/// The list's parameters, as text from the query string.
#[derive(Debug, Clone, Default)]
pub struct ListInput {
    pub account_id: Option<String>,
    pub search: Option<String>,
    pub tag: Option<String>,
    pub group: Option<String>,
    pub opted_in: Option<String>,
    pub limit: Option<String>,
    pub skip: Option<String>,
}

/// A page with its paging.
#[derive(Debug)]
pub struct ContactList {
    pub page: ContactPage,
    pub limit: i64,
    pub skip: i64,
}

/// An import.
#[derive(Debug, Clone, Default)]
pub struct ImportInput {
    pub account_id: Option<String>,
    pub contacts: Vec<ContactInput>,
    pub default_tags: Option<Vec<String>>,
    pub default_groups: Option<Vec<String>>,
    pub skip_duplicates: Option<bool>,
}

/// The outcome of one imported row.
#[derive(Debug, Clone)]
pub struct ImportResult {
    pub phone: String,
    pub name: String,
    pub outcome: ImportOutcome,
}

/// What happened to an imported row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImportOutcome {
    Created(ContactId),
    /// A contact with the phone exists (or came earlier in the same import).
    Skipped(String),
    Failed(String),
}

/// A bulk action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BulkAction {
    AddTags,
    RemoveTags,
    AddGroups,
    RemoveGroups,
    OptIn,
    OptOut,
    Block,
    Unblock,
}

impl BulkAction {
    /// Every action, as the API names them.
    pub const NAMES: [&'static str; 8] = [
        "addTags",
        "removeTags",
        "addGroups",
        "removeGroups",
        "optIn",
        "optOut",
        "block",
        "unblock",
    ];

    /// The action named `name`.
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "addTags" => Self::AddTags,
            "removeTags" => Self::RemoveTags,
            "addGroups" => Self::AddGroups,
            "removeGroups" => Self::RemoveGroups,
            "optIn" => Self::OptIn,
            "optOut" => Self::OptOut,
            "block" => Self::Block,
            "unblock" => Self::Unblock,
            _ => return None,
        })
    }

    /// Its API name.
    pub fn name(self) -> &'static str {
        Self::NAMES[self as usize]
    }
}

/// The outcome of a bulk action.
#[derive(Debug, Clone, Copy)]
pub struct BulkOutcome {
    pub action: BulkAction,
    pub matched: i64,
    pub modified: i64,
}

/// The CRM service.
pub struct CrmService {
    store: Store,
    clock: Clock,
}

impl CrmService {
    /// The service.
    pub fn new(store: Store, clock: Clock) -> Self {
        Self { store, clock }
    }

    /// A contact ready to store, from a client's row (checked).
    fn new_contact(
        &self,
        session: &SessionRow,
        input: &ContactInput,
        now: i64,
    ) -> Result<ContactRow, ServiceError> {
        let phone = phone(input.phone.as_deref())?;
        let name = required_text("name", input.name.as_deref(), MAX_NAME_CHARS)?;
        let opted_in = input.is_opted_in.unwrap_or(true);
        Ok(ContactRow {
            id: ContactId::generate(),
            account_id: session.account_id,
            session_id: session.id,
            phone: phone.e164().to_owned(),
            name,
            email: email(input.email.as_deref())?,
            company: optional_text("company", input.company.as_deref(), MAX_NAME_CHARS)?,
            tags: labels("tags", input.tags.as_deref().unwrap_or_default())?,
            groups: labels("groups", input.groups.as_deref().unwrap_or_default())?,
            is_opted_in: opted_in,
            opt_in_at: opted_in.then_some(now),
            opt_out_at: (!opted_in).then_some(now),
            is_blocked: false,
            custom_fields: custom_fields(input.custom_fields.as_ref())?,
            notes: optional_text("notes", input.notes.as_deref(), MAX_NOTES_CHARS)?,
            last_sent_at: None,
            last_received_at: None,
            sent_count: 0,
            received_count: 0,
            created_at: now,
            updated_at: now,
        })
    }

    /// `POST /contacts`: a new contact; a phone the account's list already has is 409.
    pub async fn create(
        &self,
        caller: &Caller,
        account_id: Option<&str>,
        input: ContactInput,
    ) -> Result<ContactRow, ServiceError> {
        let session = whatsapp_account(&self.store, caller, account_id).await?;
        let contact = self.new_contact(&session, &input, self.clock.now_millis())?;
        match self.store.insert_contact(&contact).await {
            Ok(()) => Ok(contact),
            Err(StoreError::Conflict(_)) => Err(duplicate()),
            Err(e) => Err(e.into()),
        }
    }

    /// The contact `id` of the caller's account.
    pub async fn get(&self, caller: &Caller, id: &str) -> Result<ContactRow, ServiceError> {
        let not_found = ServiceError::NotFound("Contact");
        let id: ContactId = id.parse().map_err(|_| ServiceError::NotFound("Contact"))?;
        match self.store.get_contact(caller.account_id, id).await? {
            Some(c) if caller.can_see(c.session_id) => Ok(c),
            _ => Err(not_found),
        }
    }

    /// `PUT /contacts/{id}`: changes the given fields; custom fields merge.
    pub async fn update(
        &self,
        caller: &Caller,
        id: &str,
        patch: ContactPatch,
    ) -> Result<ContactRow, ServiceError> {
        let contact = self.get(caller, id).await?;
        // Checked before the transaction, so nothing is written on a client mistake.
        let name = match &patch.name {
            Some(n) => Some(required_text("name", Some(n), MAX_NAME_CHARS)?),
            None => None,
        };
        let email = match &patch.email {
            Some(e) => Some(email(e.as_deref())?),
            None => None,
        };
        let company = match &patch.company {
            Some(c) => Some(optional_text("company", c.as_deref(), MAX_NAME_CHARS)?),
            None => None,
        };
        let notes = match &patch.notes {
            Some(n) => Some(optional_text("notes", n.as_deref(), MAX_NOTES_CHARS)?),
            None => None,
        };
        let tags = match &patch.tags {
            Some(t) => Some(labels("tags", t)?),
            None => None,
        };
        let groups = match &patch.groups {
            Some(g) => Some(labels("groups", g)?),
            None => None,
        };
        if let Some(fields) = &patch.custom_fields {
            for (k, v) in fields {
                custom_key(k)?;
                if let Some(v) = v {
                    custom_value(k, v)?;
                }
            }
        }
        let now = self.clock.now_millis();
        self.store
            .modify_contact(caller.account_id, contact.id, |c| {
                if let Some(n) = name {
                    c.name = n;
                }
                if let Some(e) = email {
                    c.email = e;
                }
                if let Some(v) = company {
                    c.company = v;
                }
                if let Some(n) = notes {
                    c.notes = n;
                }
                if let Some(t) = tags {
                    c.tags = t;
                }
                if let Some(g) = groups {
                    c.groups = g;
                }
                if let Some(o) = patch.is_opted_in {
                    set_opt_in(c, o, now);
                }
                if let Some(b) = patch.is_blocked {
                    c.is_blocked = b;
                }
                if let Some(fields) = patch.custom_fields {
                    for (k, v) in fields {
                        match v {
                            Some(v) => {
                                c.custom_fields.insert(k, v);
                            }
                            None => {
                                c.custom_fields.remove(&k);
                            }
                        }
                    }
                    if c.custom_fields.len() > MAX_CUSTOM_FIELDS {
                        return Err(ServiceError::invalid(
                            "customFields",
                            format!("must hold at most {MAX_CUSTOM_FIELDS} fields"),
                        ));
                    }
                }
                c.updated_at = now;
                Ok(())
            })
            .await?
            .ok_or(ServiceError::NotFound("Contact"))
    }

    /// `DELETE /contacts/{id}`.
    pub async fn delete(&self, caller: &Caller, id: &str) -> Result<(), ServiceError> {
        let contact = self.get(caller, id).await?;
        match self
            .store
            .delete_contacts(caller.account_id, &[contact.id])
            .await?
        {
            0 => Err(ServiceError::NotFound("Contact")),
            _ => Ok(()),
        }
    }

    /// `GET /contacts`.
    pub async fn list(
        &self,
        caller: &Caller,
        input: ListInput,
    ) -> Result<ContactList, ServiceError> {
        let session = whatsapp_account(&self.store, caller, input.account_id.as_deref()).await?;
        let limit = match input.limit.as_deref() {
            None | Some("") => 50,
            // Zernio's `limit` has no maximum: a larger one reads as the largest page (the
            // answer's `pagination.limit` says which).
            Some(l) => l
                .parse::<i64>()
                .ok()
                .filter(|l| *l >= 1)
                .map(|l| l.min(MAX_LIMIT))
                .ok_or_else(|| {
                    ServiceError::invalid(
                        "limit",
                        format!("must be a positive integer (a page holds at most {MAX_LIMIT})"),
                    )
                })?,
        };
        let skip =
            match input.skip.as_deref() {
                None | Some("") => 0,
                Some(s) => s.parse::<i64>().ok().filter(|s| *s >= 0).ok_or_else(|| {
                    ServiceError::invalid("skip", "must be an integer of 0 or more")
                })?,
            };
        let opted_in = match input.opted_in.as_deref() {
            None | Some("") => None,
            Some("true") => Some(true),
            Some("false") => Some(false),
            Some(_) => {
                return Err(ServiceError::invalid(
                    "optedIn",
                    "must be \"true\" or \"false\"",
                ));
            }
        };
        let nonempty = |s: Option<String>| s.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty());
        let search = nonempty(input.search);
        if search.as_deref().is_some_and(|s| chars(s) > MAX_NAME_CHARS) {
            return Err(ServiceError::invalid(
                "search",
                format!("must be at most {MAX_NAME_CHARS} characters"),
            ));
        }
        let page = self
            .store
            .list_contacts(&ContactQuery {
                account: caller.account_id,
                session: session.id,
                search,
                tag: nonempty(input.tag),
                group: nonempty(input.group),
                opted_in,
                limit,
                skip,
            })
            .await?;
        Ok(ContactList { page, limit, skip })
    }

    /// `POST /contacts/import`: up to [`MAX_IMPORT`] rows, each created, skipped (a phone
    /// the list has, or one earlier in the import) or failed with its reason.
    pub async fn import(
        &self,
        caller: &Caller,
        input: ImportInput,
    ) -> Result<Vec<ImportResult>, ServiceError> {
        let session = whatsapp_account(&self.store, caller, input.account_id.as_deref()).await?;
        if input.contacts.is_empty() {
            return Err(ServiceError::invalid(
                "contacts",
                "contacts must hold at least one contact",
            ));
        }
        if input.contacts.len() > MAX_IMPORT {
            return Err(ServiceError::invalid(
                "contacts",
                format!(
                    "must hold at most {MAX_IMPORT} contacts (has {})",
                    input.contacts.len()
                ),
            ));
        }
        let default_tags = labels(
            "defaultTags",
            input.default_tags.as_deref().unwrap_or_default(),
        )?;
        let default_groups = labels(
            "defaultGroups",
            input.default_groups.as_deref().unwrap_or_default(),
        )?;
        let skip_duplicates = input.skip_duplicates.unwrap_or(true);
        let now = self.clock.now_millis();
        let mut results = Vec::with_capacity(input.contacts.len());
        let mut fresh: Vec<ContactRow> = Vec::new();
        let mut slots: Vec<Option<usize>> = Vec::with_capacity(input.contacts.len());
        let mut seen: HashSet<String> = HashSet::new();
        for (i, row) in input.contacts.iter().enumerate() {
            let mut result = ImportResult {
                phone: row.phone.clone().unwrap_or_default(),
                name: row.name.clone().unwrap_or_default(),
                outcome: ImportOutcome::Failed(String::new()),
            };
            let mut slot = None;
            match self.new_contact(&session, row, now) {
                Err(e) => {
                    let message = match e {
                        ServiceError::Invalid { message, .. } => message,
                        other => other.to_string(),
                    };
                    result.outcome = ImportOutcome::Failed(format!("contacts[{i}].{message}"));
                }
                Ok(mut c) => {
                    add_labels(&mut c.tags, &default_tags);
                    add_labels(&mut c.groups, &default_groups);
                    if c.tags.len() > MAX_LABELS || c.groups.len() > MAX_LABELS {
                        result.outcome = ImportOutcome::Failed(format!(
                            "contacts[{i}]: at most {MAX_LABELS} tags and {MAX_LABELS} groups with the defaults"
                        ));
                    } else if !seen.insert(c.phone.clone()) {
                        result.outcome =
                            duplicate_outcome(skip_duplicates, "earlier in this import");
                    } else {
                        result.phone = c.phone.clone();
                        slot = Some(fresh.len());
                        fresh.push(c);
                    }
                }
            }
            slots.push(slot);
            results.push(result);
        }
        let inserted = if fresh.is_empty() {
            Vec::new()
        } else {
            self.store.import_contacts(&fresh).await?
        };
        for (result, slot) in results.iter_mut().zip(slots) {
            if let Some(k) = slot {
                result.outcome = if inserted[k] {
                    ImportOutcome::Created(fresh[k].id)
                } else {
                    duplicate_outcome(skip_duplicates, "in the contact list")
                };
            }
        }
        Ok(results)
    }

    /// `POST /contacts/bulk`.
    pub async fn bulk(
        &self,
        caller: &Caller,
        action: Option<&str>,
        contact_ids: Option<Vec<String>>,
        tags: Option<Vec<String>>,
        groups: Option<Vec<String>>,
    ) -> Result<BulkOutcome, ServiceError> {
        let action = match action {
            None | Some("") => return Err(ServiceError::invalid("action", "action is required")),
            Some(a) => BulkAction::parse(a).ok_or_else(|| {
                ServiceError::invalid(
                    "action",
                    format!("must be one of: {}", BulkAction::NAMES.join(", ")),
                )
            })?,
        };
        let ids = contact_ids_of(contact_ids)?;
        let values = match action {
            BulkAction::AddTags | BulkAction::RemoveTags => {
                let t = labels("tags", tags.as_deref().unwrap_or_default())?;
                if t.is_empty() {
                    return Err(ServiceError::invalid(
                        "tags",
                        format!("tags are required for {}", action.name()),
                    ));
                }
                t
            }
            BulkAction::AddGroups | BulkAction::RemoveGroups => {
                let g = labels("groups", groups.as_deref().unwrap_or_default())?;
                if g.is_empty() {
                    return Err(ServiceError::invalid(
                        "groups",
                        format!("groups are required for {}", action.name()),
                    ));
                }
                g
            }
            _ => Vec::new(),
        };
        let now = self.clock.now_millis();
        let (matched, modified) = self
            .store
            .modify_contacts(caller.account_id, &ids, |c| {
                if !caller.can_see(c.session_id) {
                    return false;
                }
                let changed = match action {
                    BulkAction::AddTags => {
                        let mut t = c.tags.clone();
                        let changed = add_labels(&mut t, &values);
                        // One that would pass the limit is left as it was (not modified).
                        if t.len() > MAX_LABELS {
                            return false;
                        }
                        c.tags = t;
                        changed
                    }
                    BulkAction::RemoveTags => remove_labels(&mut c.tags, &values),
                    BulkAction::AddGroups => {
                        let mut g = c.groups.clone();
                        let changed = add_labels(&mut g, &values);
                        if g.len() > MAX_LABELS {
                            return false;
                        }
                        c.groups = g;
                        changed
                    }
                    BulkAction::RemoveGroups => remove_labels(&mut c.groups, &values),
                    BulkAction::OptIn => set_opt_in(c, true, now),
                    BulkAction::OptOut => set_opt_in(c, false, now),
                    BulkAction::Block | BulkAction::Unblock => {
                        let block = action == BulkAction::Block;
                        let changed = c.is_blocked != block;
                        c.is_blocked = block;
                        changed
                    }
                };
                if changed {
                    c.updated_at = now;
                }
                changed
            })
            .await?;
        Ok(BulkOutcome {
            action,
            matched,
            modified,
        })
    }

    /// `DELETE /contacts/bulk`: returns how many were deleted.
    pub async fn bulk_delete(
        &self,
        caller: &Caller,
        contact_ids: Option<Vec<String>>,
    ) -> Result<u64, ServiceError> {
        let ids = contact_ids_of(contact_ids)?;
        Ok(self.store.delete_contacts(caller.account_id, &ids).await?)
    }

    /// `GET /groups`.
    pub async fn groups(
        &self,
        caller: &Caller,
        account_id: Option<&str>,
    ) -> Result<GroupSummary, ServiceError> {
        let session = whatsapp_account(&self.store, caller, account_id).await?;
        Ok(self
            .store
            .contact_groups(caller.account_id, session.id)
            .await?)
    }

    /// `POST /groups`: renames a group on every contact in it, in one transaction; returns
    /// how many contacts changed. Renaming onto an existing group merges the two.
    pub async fn rename_group(
        &self,
        caller: &Caller,
        account_id: Option<&str>,
        old_name: Option<&str>,
        new_name: Option<&str>,
    ) -> Result<i64, ServiceError> {
        let session = whatsapp_account(&self.store, caller, account_id).await?;
        let old = required_text("oldName", old_name, MAX_LABEL_CHARS)?;
        let new = required_text("newName", new_name, MAX_LABEL_CHARS)?;
        if old == new {
            return Err(ServiceError::invalid(
                "newName",
                "newName must differ from oldName",
            ));
        }
        let now = self.clock.now_millis();
        Ok(self
            .store
            .modify_contact_group(caller.account_id, session.id, &old, |c| {
                let mut groups = Vec::with_capacity(c.groups.len());
                for g in c.groups.drain(..) {
                    let g = if g == old { new.clone() } else { g };
                    if !groups.contains(&g) {
                        groups.push(g);
                    }
                }
                c.groups = groups;
                c.updated_at = now;
            })
            .await?)
    }

    /// `DELETE /groups`: removes a group from every contact in it (the contacts stay).
    pub async fn delete_group(
        &self,
        caller: &Caller,
        account_id: Option<&str>,
        group_name: Option<&str>,
    ) -> Result<i64, ServiceError> {
        let session = whatsapp_account(&self.store, caller, account_id).await?;
        let name = required_text("groupName", group_name, MAX_LABEL_CHARS)?;
        let now = self.clock.now_millis();
        Ok(self
            .store
            .modify_contact_group(caller.account_id, session.id, &name, |c| {
                c.groups.retain(|g| *g != name);
                c.updated_at = now;
            })
            .await?)
    }

    /// Which of `phones` (E.164) have opted out in the contact list of `session`: the bulk
    /// and broadcast paths skip them (and say so per recipient).
    pub async fn opted_out(
        &self,
        caller: &Caller,
        session: SessionId,
        phones: &[String],
    ) -> Result<HashSet<String>, ServiceError> {
        Ok(self
            .store
            .opted_out_phones(caller.account_id, session, phones)
            .await?)
    }
}

fn duplicate_outcome(skip_duplicates: bool, where_: &str) -> ImportOutcome {
    let message = format!("a contact with this phone number already exists {where_}");
    if skip_duplicates {
        ImportOutcome::Skipped(message)
    } else {
        ImportOutcome::Failed(message)
    }
}

/// `contactIds`: 1 to [`MAX_BULK`] ids; ids that are not contact ids match nothing.
fn contact_ids_of(ids: Option<Vec<String>>) -> Result<Vec<ContactId>, ServiceError> {
    let ids = ids.unwrap_or_default();
    if ids.is_empty() {
        return Err(ServiceError::invalid(
            "contactIds",
            "contactIds array is required",
        ));
    }
    if ids.len() > MAX_BULK {
        return Err(ServiceError::invalid(
            "contactIds",
            format!("must hold at most {MAX_BULK} ids (has {})", ids.len()),
        ));
    }
    let mut out: Vec<ContactId> = ids.iter().filter_map(|i| i.parse().ok()).collect();
    out.sort_by_key(|i| i.to_string());
    out.dedup();
    Ok(out)
}
