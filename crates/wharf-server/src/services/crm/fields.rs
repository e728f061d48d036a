//! The checks and edits of a contact's fields: names, email, phone, labels, custom fields
//! and opt-in, each refused with the field at fault.

use wharf_core::Phone;
use wharf_store::ContactRow;

use super::*;

pub(super) fn chars(s: &str) -> usize {
    s.chars().count()
}

/// A required name-like text: trimmed, 1 to `max` characters.
pub(super) fn required_text(
    field: &str,
    value: Option<&str>,
    max: usize,
) -> Result<String, ServiceError> {
    let v = value.map(str::trim).unwrap_or("");
    if v.is_empty() {
        return Err(ServiceError::invalid(field, format!("{field} is required")));
    }
    if chars(v) > max {
        return Err(ServiceError::invalid(
            field,
            format!("must be at most {max} characters"),
        ));
    }
    Ok(v.to_owned())
}

/// An optional text: trimmed, empty means none, at most `max` characters.
pub(super) fn optional_text(
    field: &str,
    value: Option<&str>,
    max: usize,
) -> Result<Option<String>, ServiceError> {
    let v = value.map(str::trim).unwrap_or("");
    if chars(v) > max {
        return Err(ServiceError::invalid(
            field,
            format!("must be at most {max} characters"),
        ));
    }
    Ok((!v.is_empty()).then(|| v.to_owned()))
}

/// An email address, as far as a form checks one.
pub fn is_email(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && s.len() <= 254
        && !s.contains(char::is_whitespace)
        && !domain.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
}

pub(super) fn email(value: Option<&str>) -> Result<Option<String>, ServiceError> {
    let v = optional_text("email", value, 254)?;
    if let Some(e) = &v
        && !is_email(e)
    {
        return Err(ServiceError::invalid("email", "must be an email address"));
    }
    Ok(v)
}

pub(super) fn phone(value: Option<&str>) -> Result<Phone, ServiceError> {
    let v = value.map(str::trim).unwrap_or("");
    if v.is_empty() {
        return Err(ServiceError::invalid("phone", "phone is required"));
    }
    Phone::parse(v).map_err(|e| {
        ServiceError::invalid(
            "phone",
            format!("must be a phone number in E.164 format, e.g. +1234567890 ({e})"),
        )
    })
}

/// Tags or groups: trimmed, non-empty, at most [`MAX_LABEL_CHARS`] each and
/// [`MAX_LABELS`] in all; repeats are dropped.
pub(super) fn labels(field: &str, values: &[String]) -> Result<Vec<String>, ServiceError> {
    let mut out: Vec<String> = Vec::new();
    for (i, v) in values.iter().enumerate() {
        let v = v.trim();
        if v.is_empty() || chars(v) > MAX_LABEL_CHARS {
            return Err(ServiceError::invalid(
                format!("{field}[{i}]"),
                format!("must be 1 to {MAX_LABEL_CHARS} characters"),
            ));
        }
        if !out.iter().any(|o| o == v) {
            out.push(v.to_owned());
        }
    }
    if out.len() > MAX_LABELS {
        return Err(ServiceError::invalid(
            field,
            format!("must hold at most {MAX_LABELS} entries"),
        ));
    }
    Ok(out)
}

pub(super) fn custom_key(key: &str) -> Result<(), ServiceError> {
    if key.trim().is_empty() || chars(key) > 64 {
        return Err(ServiceError::invalid(
            "customFields",
            "field names must be 1 to 64 characters",
        ));
    }
    Ok(())
}

pub(super) fn custom_value(key: &str, value: &str) -> Result<(), ServiceError> {
    if chars(value) > MAX_CUSTOM_VALUE_CHARS {
        return Err(ServiceError::invalid(
            format!("customFields.{key}"),
            format!("must be at most {MAX_CUSTOM_VALUE_CHARS} characters"),
        ));
    }
    Ok(())
}

pub(super) fn custom_fields(
    values: Option<&BTreeMap<String, String>>,
) -> Result<BTreeMap<String, String>, ServiceError> {
    let Some(values) = values else {
        return Ok(BTreeMap::new());
    };
    for (k, v) in values {
        custom_key(k)?;
        custom_value(k, v)?;
    }
    if values.len() > MAX_CUSTOM_FIELDS {
        return Err(ServiceError::invalid(
            "customFields",
            format!("must hold at most {MAX_CUSTOM_FIELDS} fields"),
        ));
    }
    Ok(values.clone())
}

/// Merges `extra` into `list` (keeping order); true when something was added.
pub(super) fn add_labels(list: &mut Vec<String>, extra: &[String]) -> bool {
    let before = list.len();
    for e in extra {
        if !list.contains(e) {
            list.push(e.clone());
        }
    }
    list.len() != before
}

/// Removes `gone` from `list`; true when something was removed.
pub(super) fn remove_labels(list: &mut Vec<String>, gone: &[String]) -> bool {
    let before = list.len();
    list.retain(|l| !gone.contains(l));
    list.len() != before
}

pub(super) fn set_opt_in(c: &mut ContactRow, opted_in: bool, now: i64) -> bool {
    if c.is_opted_in == opted_in {
        return false;
    }
    c.is_opted_in = opted_in;
    if opted_in {
        c.opt_in_at = Some(now);
    } else {
        c.opt_out_at = Some(now);
    }
    true
}

pub(super) fn duplicate() -> ServiceError {
    ServiceError::conflict(
        "contact_exists",
        "Contact with this phone number already exists",
    )
}
