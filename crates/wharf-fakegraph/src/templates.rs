//! Message templates: create, list (cursor paging), get, edit and delete, per WABA.

use std::collections::HashMap;

use base64::{Engine as _, engine::general_purpose::STANDARD};
use serde_json::{Map, Value, json};

use crate::{
    check::{Check, Obj, object, only_keys, opt_str, opt_text, placeholders, req_array, text},
    error::GraphError,
    state::{Shared, State, Template},
    wire::encode,
};

const CATEGORIES: [&str; 3] = ["MARKETING", "UTILITY", "AUTHENTICATION"];
const DEFAULT_FIELDS: [&str; 7] = [
    "name",
    "parameter_format",
    "components",
    "language",
    "status",
    "category",
    "id",
];
const EXTRA_FIELDS: [&str; 4] = [
    "rejected_reason",
    "quality_score",
    "previous_category",
    "sub_category",
];

/// `POST /{waba}/message_templates`.
pub(crate) fn create(sh: &Shared, waba: &str, body: &Value) -> Result<Value, GraphError> {
    let spec = validate_create(body).map_err(GraphError::invalid)?;
    let mut st = sh.lock();
    let exists = st.waba_templates.get(waba).is_some_and(|ids| {
        ids.iter().any(|id| {
            st.templates
                .get(id)
                .is_some_and(|t| t.name == spec.name && t.language == spec.language)
        })
    });
    if exists {
        return Err(GraphError {
            subcode: Some(2_388_023),
            message: format!(
                "(#100) Message template already exists: there is already {} content for \
                 template {}",
                spec.language, spec.name
            ),
            ..GraphError::code(100, "Message template already exists")
        });
    }
    let id = sh.next_id();
    let category = spec.category.clone();
    st.waba_templates
        .entry(waba.to_owned())
        .or_default()
        .push(id.clone());
    st.templates.insert(
        id.clone(),
        Template {
            id: id.clone(),
            waba: waba.to_owned(),
            name: spec.name,
            language: spec.language,
            category: spec.category,
            status: "PENDING".into(),
            parameter_format: spec.parameter_format,
            components: spec.components,
            body_params: spec.body_params,
        },
    );
    Ok(json!({"id": id, "status": "PENDING", "category": category}))
}

struct Spec {
    name: String,
    language: String,
    category: String,
    parameter_format: String,
    components: Value,
    body_params: usize,
}

fn validate_create(body: &Value) -> Check<Spec> {
    let o = object(body, "body")?;
    only_keys(
        o,
        &[
            "name",
            "language",
            "category",
            "components",
            "parameter_format",
            "allow_category_change",
            "message_send_ttl_seconds",
        ],
        "",
    )?;
    let name = text(o, "name", "", 1, 512)?;
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        return Err(format!(
            "name {name:?} may only hold lowercase letters, digits and underscores"
        ));
    }
    let language = text(o, "language", "", 2, 16)?;
    if !language
        .bytes()
        .all(|b| b.is_ascii_alphabetic() || b == b'_')
    {
        return Err(format!("language {language:?} is not a language code"));
    }
    let category = category(o)?.ok_or("category is required")?;
    let parameter_format = parameter_format(o)?;
    let components = o.get("components").ok_or("components is required")?;
    let body_params = validate_components(components)?;
    Ok(Spec {
        name: name.to_owned(),
        language: language.to_owned(),
        category,
        parameter_format,
        components: components.clone(),
        body_params,
    })
}

fn category(o: &Obj) -> Check<Option<String>> {
    let Some(c) = opt_str(o, "category", "")? else {
        return Ok(None);
    };
    let c = c.to_ascii_uppercase();
    if !CATEGORIES.contains(&c.as_str()) {
        return Err(format!(
            "category {c:?} must be MARKETING, UTILITY or AUTHENTICATION"
        ));
    }
    Ok(Some(c))
}

fn parameter_format(o: &Obj) -> Check<String> {
    match opt_str(o, "parameter_format", "")?.map(str::to_ascii_uppercase) {
        None => Ok("POSITIONAL".into()),
        Some(f) if f == "POSITIONAL" || f == "NAMED" => Ok(f),
        Some(f) => Err(format!(
            "parameter_format {f:?} must be POSITIONAL or NAMED"
        )),
    }
}

/// Checks template components; returns the number of BODY placeholders.
fn validate_components(v: &Value) -> Check<usize> {
    let comps = v.as_array().ok_or("components must be an array")?;
    let mut seen = Vec::new();
    let mut body_params = None;
    for (i, c) in comps.iter().enumerate() {
        let path = format!("components[{i}]");
        let c = object(c, &path)?;
        let kind = opt_str(c, "type", &path)?
            .ok_or_else(|| format!("{path}.type is required"))?
            .to_ascii_uppercase();
        if seen.contains(&kind) {
            return Err(format!("{path}: more than one {kind} component"));
        }
        match kind.as_str() {
            "BODY" => {
                let t = text(c, "text", &path, 1, 1024)?;
                body_params = Some(placeholders(t));
            }
            "HEADER" => {
                let format = opt_str(c, "format", &path)?
                    .ok_or_else(|| format!("{path}.format is required"))?
                    .to_ascii_uppercase();
                match format.as_str() {
                    "TEXT" => {
                        text(c, "text", &path, 1, 60)?;
                    }
                    "IMAGE" | "VIDEO" | "DOCUMENT" | "LOCATION" => {}
                    f => return Err(format!("{path}.format {f:?} is not valid")),
                }
            }
            "FOOTER" => {
                text(c, "text", &path, 1, 60)?;
            }
            "BUTTONS" => {
                let buttons = req_array(c, "buttons", &path, 1, 10)?;
                for (j, b) in buttons.iter().enumerate() {
                    let bp = format!("{path}.buttons[{j}]");
                    let b = object(b, &bp)?;
                    text(b, "type", &bp, 1, 64)?;
                    opt_text(b, "text", &bp, 1, 25)?;
                }
            }
            k => {
                return Err(format!(
                    "{path}.type {k:?} must be HEADER, BODY, FOOTER or BUTTONS"
                ));
            }
        }
        seen.push(kind);
    }
    body_params.ok_or_else(|| "components must include a BODY".into())
}

/// `GET /{waba}/message_templates` with `fields`, `limit`, `after`/`before`, `status`,
/// `name` (substring), `category` and `language` filters.
pub(crate) fn list(
    sh: &Shared,
    waba: &str,
    q: &HashMap<String, String>,
    raw_path: &str,
) -> Result<Value, GraphError> {
    let fields = fields(q).map_err(GraphError::invalid)?;
    let limit = match q.get("limit") {
        None => 25,
        Some(l) => l
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=1000).contains(n))
            .ok_or_else(|| GraphError::invalid(format!("limit {l:?} must be 1..=1000")))?,
    };
    let upper = |k: &str| -> Option<Vec<String>> {
        q.get(k).map(|v| {
            v.split(',')
                .map(|s| s.trim().to_ascii_uppercase())
                .collect()
        })
    };
    let statuses = upper("status");
    let categories = upper("category");
    let st = sh.lock();
    let all: Vec<&Template> = st
        .waba_templates
        .get(waba)
        .into_iter()
        .flatten()
        .filter_map(|id| st.templates.get(id))
        .filter(|t| statuses.as_ref().is_none_or(|s| s.contains(&t.status)))
        .filter(|t| categories.as_ref().is_none_or(|c| c.contains(&t.category)))
        .filter(|t| q.get("name").is_none_or(|n| t.name.contains(n.as_str())))
        .filter(|t| q.get("language").is_none_or(|l| &t.language == l))
        .collect();
    let cursor = |k: &str| -> Result<Option<usize>, GraphError> {
        q.get(k)
            .map(|c| {
                decode_cursor(c).ok_or_else(|| GraphError::invalid(format!("{k} cursor {c:?}")))
            })
            .transpose()
    };
    let (start, end) = match (cursor("after")?, cursor("before")?) {
        (Some(a), _) => (a + 1, a + 1 + limit),
        (None, Some(b)) => (b.saturating_sub(limit), b),
        (None, None) => (0, limit),
    };
    let start = start.min(all.len());
    let end = end.min(all.len());
    let data: Vec<Value> = all[start..end]
        .iter()
        .map(|t| project(t, fields.as_deref()))
        .collect();
    let mut out = json!({ "data": data });
    if end > start {
        let mut paging =
            json!({"cursors": {"before": cursor_of(start), "after": cursor_of(end - 1)}});
        let mut keep: Vec<String> = ["fields", "status", "name", "category", "language"]
            .iter()
            .filter_map(|k| q.get(*k).map(|v| format!("{k}={}", encode(v))))
            .collect();
        keep.push(format!("limit={limit}"));
        let base = format!("{}{raw_path}?{}", sh.base_url, keep.join("&"));
        if end < all.len() {
            paging["next"] = json!(format!("{base}&after={}", encode(&cursor_of(end - 1))));
        }
        if start > 0 {
            paging["previous"] = json!(format!("{base}&before={}", encode(&cursor_of(start))));
        }
        out["paging"] = paging;
    }
    Ok(out)
}

fn cursor_of(offset: usize) -> String {
    STANDARD.encode(offset.to_string())
}

fn decode_cursor(c: &str) -> Option<usize> {
    let padded = format!(
        "{}{}",
        c.trim_end_matches('='),
        "=".repeat((4 - c.trim_end_matches('=').len() % 4) % 4)
    );
    let raw = STANDARD.decode(padded).ok()?;
    std::str::from_utf8(&raw).ok()?.parse().ok()
}

/// The requested `fields` (validated), or `None` for the default set.
fn fields(q: &HashMap<String, String>) -> Check<Option<Vec<String>>> {
    let Some(f) = q.get("fields") else {
        return Ok(None);
    };
    let list: Vec<String> = f
        .split(',')
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect();
    if let Some(bad) = list
        .iter()
        .find(|f| !DEFAULT_FIELDS.contains(&f.as_str()) && !EXTRA_FIELDS.contains(&f.as_str()))
    {
        return Err(format!(
            "fields: tried accessing nonexisting field ({bad}) on node type (WhatsAppBusinessHSM)"
        ));
    }
    Ok(Some(list))
}

fn project(t: &Template, fields: Option<&[String]>) -> Value {
    let full = t.to_json();
    let Some(fields) = fields else {
        return full;
    };
    let mut out = Map::new();
    for f in fields.iter().map(String::as_str).chain(["id"]) {
        let v = match f {
            "rejected_reason" => json!("NONE"),
            "quality_score" => json!({"score": "UNKNOWN"}),
            "previous_category" | "sub_category" => continue,
            _ => full[f].clone(),
        };
        out.insert(f.to_owned(), v);
    }
    Value::Object(out)
}

/// `GET /{template-id}`.
pub(crate) fn get(sh: &Shared, id: &str, q: &HashMap<String, String>) -> Result<Value, GraphError> {
    let fields = fields(q).map_err(GraphError::invalid)?;
    let st = sh.lock();
    let t = st
        .templates
        .get(id)
        .ok_or_else(|| GraphError::no_object("GET", id))?;
    Ok(project(t, fields.as_deref()))
}

/// `POST /{template-id}` with `components` and/or `category`.
pub(crate) fn edit(sh: &Shared, id: &str, body: &Value) -> Result<Value, GraphError> {
    /// New category, and new components with their BODY placeholder count.
    type Edit = (Option<String>, Option<(Value, usize)>);
    let check = || -> Check<Edit> {
        let o = object(body, "body")?;
        only_keys(
            o,
            &[
                "components",
                "category",
                "message_send_ttl_seconds",
                "parameter_format",
            ],
            "",
        )?;
        let category = category(o)?;
        let components = match o.get("components") {
            Some(c) => Some((c.clone(), validate_components(c)?)),
            None => None,
        };
        if category.is_none() && components.is_none() {
            return Err("components or category is required".into());
        }
        Ok((category, components))
    };
    let (category, components) = check().map_err(GraphError::invalid)?;
    let mut st = sh.lock();
    let t = st
        .templates
        .get_mut(id)
        .ok_or_else(|| GraphError::no_object("POST", id))?;
    if let Some(c) = category {
        t.category = c;
    }
    if let Some((c, n)) = components {
        t.components = c;
        t.body_params = n;
    }
    Ok(json!({"success": true}))
}

/// `DELETE /{waba}/message_templates?name=N[&hsm_id=ID]`: all languages of `name`, or one.
pub(crate) fn delete(
    sh: &Shared,
    waba: &str,
    q: &HashMap<String, String>,
) -> Result<Value, GraphError> {
    let name = q
        .get("name")
        .filter(|n| !n.is_empty())
        .ok_or_else(|| GraphError::invalid("name is required"))?;
    let hsm = q.get("hsm_id");
    let mut st = sh.lock();
    let st: &mut State = &mut st;
    let doomed: Vec<String> = st
        .waba_templates
        .get(waba)
        .into_iter()
        .flatten()
        .filter(|id| {
            st.templates
                .get(*id)
                .is_some_and(|t| &t.name == name && hsm.is_none_or(|h| h == *id))
        })
        .cloned()
        .collect();
    if doomed.is_empty() {
        return Err(GraphError {
            subcode: Some(2_593_002),
            message: format!("(#100) Message template {name:?} not found"),
            ..GraphError::code(100, "Template not found")
        });
    }
    for id in &doomed {
        st.templates.remove(id);
    }
    if let Some(ids) = st.waba_templates.get_mut(waba) {
        ids.retain(|id| !doomed.contains(id));
    }
    Ok(json!({"success": true}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip() {
        for n in [0, 7, 25, 1234] {
            assert_eq!(decode_cursor(&cursor_of(n)), Some(n));
            assert_eq!(decode_cursor(cursor_of(n).trim_end_matches('=')), Some(n));
        }
        assert_eq!(decode_cursor("!!"), None);
    }
}
