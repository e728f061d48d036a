//! The send body's interactive and template kinds (`buttons`, `list`, `template`), checked
//! against WhatsApp's limits at the edge so an engine never sends what WhatsApp would refuse.

use std::collections::HashSet;

use serde::Deserialize;
use serde_json::Value;
use utoipa::ToSchema;
use wharf_core::message::{
    Content, ListRow, ListSection, ReplyButton, TemplateComponent, TemplateComponentKind,
    TemplateParameter,
};

use crate::ServiceError;

/// A reply button.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ButtonBody {
    /// Returned when the user taps it: 1 to 256 characters, unique in the message.
    pub id: String,
    /// 1 to 20 characters.
    pub title: String,
}

/// Reply buttons: `{"body", "header"?, "footer"?, "buttons": [{"id", "title"}]}`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ButtonsBody {
    /// 1 to 1,024 characters.
    pub body: String,
    /// Text header, at most 60 characters.
    pub header: Option<String>,
    /// At most 60 characters.
    pub footer: Option<String>,
    /// 1 to 3 buttons.
    pub buttons: Vec<ButtonBody>,
}

/// A row of a list.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ListRowBody {
    /// 1 to 200 characters, unique in the message.
    pub id: String,
    /// 1 to 24 characters.
    pub title: String,
    /// At most 72 characters.
    pub description: Option<String>,
}

/// A section of a list.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ListSectionBody {
    /// At most 24 characters; required when there are several sections.
    pub title: Option<String>,
    pub rows: Vec<ListRowBody>,
}

/// A list: `{"body", "header"?, "footer"?, "button", "sections": [{"title"?, "rows": […]}]}`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ListBody {
    /// 1 to 4,096 characters.
    pub body: String,
    pub header: Option<String>,
    pub footer: Option<String>,
    /// The label of the button opening the menu: 1 to 20 characters.
    pub button: String,
    /// 1 to 10 sections holding 1 to 10 rows in all.
    pub sections: Vec<ListSectionBody>,
}

/// A template: `{"name", "language", "components"?}`; components as the Cloud API takes them
/// (`{"type": "header"|"body"|"button", "sub_type"?, "index"?, "parameters": […]}`).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TemplateBody {
    /// Lowercase letters, digits and underscores, up to 512 characters.
    pub name: String,
    /// The language code (`en_US`).
    pub language: String,
    /// Parameters by component; parameter types `text`, `currency`, `date_time`, `image`,
    /// `video`, `document`, `payload`, `coupon_code`.
    #[schema(value_type = Option<Vec<Object>>)]
    pub components: Option<Vec<Value>>,
}

fn invalid(field: &str, message: impl Into<String>) -> ServiceError {
    ServiceError::invalid(field, message)
}

/// `text` of `min..=max` characters (not blank when `min > 0`).
fn bounded(field: &str, text: &str, min: usize, max: usize) -> Result<String, ServiceError> {
    let count = text.chars().count();
    if min > 0 && text.trim().is_empty() {
        return Err(invalid(field, "must not be empty"));
    }
    if count > max {
        return Err(invalid(
            field,
            format!("must be at most {max} characters (got {count})"),
        ));
    }
    Ok(text.to_owned())
}

fn optional(
    field: &str,
    text: &Option<String>,
    max: usize,
) -> Result<Option<String>, ServiceError> {
    text.as_deref()
        .filter(|t| !t.is_empty())
        .map(|t| bounded(field, t, 1, max))
        .transpose()
}

fn http_url(field: &str, url: &str) -> Result<String, ServiceError> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    let ok = rest.is_some_and(|r| {
        !r.split(['/', '?', '#']).next().unwrap_or("").is_empty()
            && !url.chars().any(char::is_whitespace)
    });
    if ok {
        Ok(url.to_owned())
    } else {
        Err(invalid(
            field,
            "must be an http:// or https:// URL with a host",
        ))
    }
}

impl ButtonsBody {
    pub fn content(&self) -> Result<Content, ServiceError> {
        if !(1..=3).contains(&self.buttons.len()) {
            return Err(invalid(
                "buttons.buttons",
                format!("must have 1 to 3 buttons (got {})", self.buttons.len()),
            ));
        }
        let mut ids = HashSet::new();
        let mut buttons = Vec::with_capacity(self.buttons.len());
        for (i, b) in self.buttons.iter().enumerate() {
            let id = bounded(&format!("buttons.buttons[{i}].id"), &b.id, 1, 256)?;
            if !ids.insert(id.clone()) {
                return Err(invalid(
                    &format!("buttons.buttons[{i}].id"),
                    "button ids must be different from each other",
                ));
            }
            let title = bounded(&format!("buttons.buttons[{i}].title"), &b.title, 1, 20)?;
            buttons.push(ReplyButton { id, title });
        }
        Ok(Content::Buttons {
            body: bounded("buttons.body", &self.body, 1, 1024)?,
            header: optional("buttons.header", &self.header, 60)?,
            footer: optional("buttons.footer", &self.footer, 60)?,
            buttons,
        })
    }
}

impl ListBody {
    pub fn content(&self) -> Result<Content, ServiceError> {
        if !(1..=10).contains(&self.sections.len()) {
            return Err(invalid(
                "list.sections",
                format!("must have 1 to 10 sections (got {})", self.sections.len()),
            ));
        }
        let several = self.sections.len() > 1;
        let mut ids = HashSet::new();
        let mut sections = Vec::with_capacity(self.sections.len());
        for (i, s) in self.sections.iter().enumerate() {
            let path = format!("list.sections[{i}]");
            let title = optional(&format!("{path}.title"), &s.title, 24)?;
            if several && title.is_none() {
                return Err(invalid(
                    &format!("{path}.title"),
                    "required when the list has several sections",
                ));
            }
            if s.rows.is_empty() {
                return Err(invalid(
                    &format!("{path}.rows"),
                    "must have at least one row",
                ));
            }
            let mut rows = Vec::with_capacity(s.rows.len());
            for (j, r) in s.rows.iter().enumerate() {
                let rp = format!("{path}.rows[{j}]");
                let id = bounded(&format!("{rp}.id"), &r.id, 1, 200)?;
                if !ids.insert(id.clone()) {
                    return Err(invalid(
                        &format!("{rp}.id"),
                        "row ids must be different from each other",
                    ));
                }
                rows.push(ListRow {
                    id,
                    title: bounded(&format!("{rp}.title"), &r.title, 1, 24)?,
                    description: optional(&format!("{rp}.description"), &r.description, 72)?,
                });
            }
            sections.push(ListSection { title, rows });
        }
        if ids.len() > 10 {
            return Err(invalid(
                "list.sections",
                format!("may hold at most 10 rows in all (got {})", ids.len()),
            ));
        }
        Ok(Content::List {
            body: bounded("list.body", &self.body, 1, 4096)?,
            header: optional("list.header", &self.header, 60)?,
            footer: optional("list.footer", &self.footer, 60)?,
            button: bounded("list.button", &self.button, 1, 20)?,
            sections,
        })
    }
}

impl TemplateBody {
    pub fn content(&self) -> Result<Content, ServiceError> {
        let name = bounded("template.name", &self.name, 1, 512)?;
        if !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            return Err(invalid(
                "template.name",
                "may only hold lowercase letters, digits and underscores",
            ));
        }
        let language = bounded("template.language", &self.language, 2, 16)?;
        if language.chars().count() < 2
            || !language
                .bytes()
                .all(|b| b.is_ascii_alphabetic() || b == b'_')
        {
            return Err(invalid(
                "template.language",
                "must be a language code such as en or en_US",
            ));
        }
        let raw = self.components.as_deref().unwrap_or_default();
        if raw.len() > 20 {
            return Err(invalid("template.components", "at most 20 components"));
        }
        let mut components = Vec::with_capacity(raw.len());
        for (i, value) in raw.iter().enumerate() {
            components.push(component(&format!("template.components[{i}]"), value)?);
        }
        Ok(Content::Template {
            name,
            language,
            components,
        })
    }
}

/// One template component, with the field at fault named on failure (also the Business
/// API's bulk sends and broadcasts: Meta's rules are the same).
pub(crate) fn component(path: &str, value: &Value) -> Result<TemplateComponent, ServiceError> {
    let obj = value
        .as_object()
        .ok_or_else(|| invalid(path, "must be an object"))?;
    if let Some(k) = obj
        .keys()
        .find(|k| !["type", "sub_type", "index", "parameters"].contains(&k.as_str()))
    {
        return Err(invalid(&format!("{path}.{k}"), "unknown field"));
    }
    let kind = match obj.get("type").and_then(Value::as_str) {
        Some("header") => TemplateComponentKind::Header,
        Some("body") => TemplateComponentKind::Body,
        Some("button") => TemplateComponentKind::Button,
        _ => {
            return Err(invalid(
                &format!("{path}.type"),
                "required: header, body or button",
            ));
        }
    };
    let sub_type = match obj.get("sub_type") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(bounded(&format!("{path}.sub_type"), s, 1, 64)?),
        Some(_) => return Err(invalid(&format!("{path}.sub_type"), "must be a string")),
    };
    // Meta accepts the index as a number or a string of digits.
    let index = match obj.get("index") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(s)) => s.parse::<u64>().ok(),
        Some(_) => Some(u64::MAX),
    };
    let index = match index {
        Some(i) if i <= 9 => Some(i as u8),
        Some(_) => {
            return Err(invalid(
                &format!("{path}.index"),
                "must be a button position from 0 to 9",
            ));
        }
        None => None,
    };
    if kind == TemplateComponentKind::Button {
        if sub_type.is_none() {
            return Err(invalid(
                &format!("{path}.sub_type"),
                "required for buttons (quick_reply, url, copy_code, …)",
            ));
        }
        if index.is_none() {
            return Err(invalid(&format!("{path}.index"), "required for buttons"));
        }
    } else if sub_type.is_some() || index.is_some() {
        let field = if sub_type.is_some() {
            "sub_type"
        } else {
            "index"
        };
        return Err(invalid(
            &format!("{path}.{field}"),
            "only applies to button components",
        ));
    }
    let params = match obj.get("parameters") {
        None | Some(Value::Null) => &Vec::new(),
        Some(Value::Array(a)) => a,
        Some(_) => return Err(invalid(&format!("{path}.parameters"), "must be an array")),
    };
    if params.len() > 100 {
        return Err(invalid(
            &format!("{path}.parameters"),
            "at most 100 parameters",
        ));
    }
    let mut parameters = Vec::with_capacity(params.len());
    for (j, p) in params.iter().enumerate() {
        parameters.push(parameter(&format!("{path}.parameters[{j}]"), p)?);
    }
    Ok(TemplateComponent {
        kind,
        sub_type,
        index,
        parameters,
    })
}

fn parameter(path: &str, value: &Value) -> Result<TemplateParameter, ServiceError> {
    let de = serde_path_to_error::deserialize::<_, TemplateParameter>(value);
    let param = de.map_err(|e| {
        let at = e.path().to_string();
        let field = if at == "." {
            path.to_owned()
        } else {
            format!("{path}.{at}")
        };
        invalid(&field, e.inner().to_string())
    })?;
    let text = |field: &str, t: &str, max: usize| bounded(&format!("{path}.{field}"), t, 1, max);
    match &param {
        TemplateParameter::Text {
            text: t,
            parameter_name,
        } => {
            text("text", t, 32_768)?;
            if let Some(n) = parameter_name {
                text("parameter_name", n, 512)?;
            }
        }
        TemplateParameter::Currency { currency, .. } => {
            text("currency.fallback_value", &currency.fallback_value, 1024)?;
            if currency.code.len() != 3 || !currency.code.bytes().all(|b| b.is_ascii_uppercase()) {
                return Err(invalid(
                    &format!("{path}.currency.code"),
                    "must be an ISO 4217 code such as USD",
                ));
            }
        }
        TemplateParameter::DateTime { date_time, .. } => {
            text("date_time.fallback_value", &date_time.fallback_value, 1024)?;
        }
        TemplateParameter::Image { image: m } => {
            http_url(&format!("{path}.image.link"), &m.link)?;
        }
        TemplateParameter::Video { video: m } => {
            http_url(&format!("{path}.video.link"), &m.link)?;
        }
        TemplateParameter::Document { document } => {
            http_url(&format!("{path}.document.link"), &document.link)?;
            if let Some(f) = &document.filename {
                text("document.filename", f, 240)?;
            }
        }
        TemplateParameter::Payload { payload } => {
            text("payload", payload, 256)?;
        }
        TemplateParameter::CouponCode { coupon_code } => {
            text("coupon_code", coupon_code, 20)?;
        }
    }
    Ok(param)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn field_of(e: ServiceError) -> String {
        match e {
            ServiceError::Invalid { errors, .. } => errors.keys().next().cloned().unwrap(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn templates_are_checked_field_by_field() {
        let body: TemplateBody = serde_json::from_value(json!({
            "name": "order_update", "language": "en_US",
            "components": [
                {"type": "header", "parameters": [{"type": "image", "image": {"link": "ftp://x"}}]},
            ]
        }))
        .unwrap();
        assert_eq!(
            field_of(body.content().unwrap_err()),
            "template.components[0].parameters[0].image.link"
        );
        let body: TemplateBody = serde_json::from_value(json!({
            "name": "order_update", "language": "en_US",
            "components": [{"type": "body", "parameters": [{"type": "text"}]}]
        }))
        .unwrap();
        assert!(
            field_of(body.content().unwrap_err())
                .starts_with("template.components[0].parameters[0]")
        );
        let body: TemplateBody = serde_json::from_value(json!({
            "name": "order_update", "language": "en_US",
            "components": [{"type": "button", "sub_type": "quick_reply", "index": "0",
                            "parameters": [{"type": "payload", "payload": "STOP"}]},
                           {"type": "body", "parameters": [{"type": "text", "text": "Ana"}]}]
        }))
        .unwrap();
        let Content::Template { components, .. } = body.content().unwrap() else {
            panic!()
        };
        assert_eq!(components[0].index, Some(0));
        let body: TemplateBody =
            serde_json::from_value(json!({"name": "Order", "language": "en_US"})).unwrap();
        assert_eq!(field_of(body.content().unwrap_err()), "template.name");
        let body: TemplateBody = serde_json::from_value(json!({
            "name": "x", "language": "en", "components": [{"type": "button", "index": 0}]
        }))
        .unwrap();
        assert_eq!(
            field_of(body.content().unwrap_err()),
            "template.components[0].sub_type"
        );
    }

    #[test]
    fn lists_respect_the_limits() {
        let rows: Vec<Value> = (0..11)
            .map(|i| json!({"id": format!("r{i}"), "title": "Row"}))
            .collect();
        let body: ListBody = serde_json::from_value(json!({
            "body": "Choose", "button": "Options", "sections": [{"rows": rows}]
        }))
        .unwrap();
        assert_eq!(field_of(body.content().unwrap_err()), "list.sections");
        let body: ListBody = serde_json::from_value(json!({
            "body": "Choose", "button": "Options",
            "sections": [{"title": "A", "rows": [{"id": "1", "title": "x"}]},
                         {"rows": [{"id": "2", "title": "y"}]}]
        }))
        .unwrap();
        assert_eq!(
            field_of(body.content().unwrap_err()),
            "list.sections[1].title"
        );
    }
}
