//! Meta's template rules: names, languages, components, variables and buttons as Meta
//! checks them, and the message a template renders to on an engine without templates.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};
use wharf_core::{
    engine::Capabilities,
    message::{Content, MessageKind, ReplyButton, TemplateComponentKind, TemplateParameter},
};

use super::invalid;
use crate::ServiceError;

/// The text a parameter stands for (media ones have none).
pub(super) fn texts(
    params: &[&TemplateParameter],
    part: &str,
) -> Result<Vec<String>, ServiceError> {
    params
        .iter()
        .map(|p| match p {
            TemplateParameter::Text { text, .. } => Ok(text.clone()),
            TemplateParameter::Currency { currency, .. } => Ok(currency.fallback_value.clone()),
            TemplateParameter::DateTime { date_time, .. } => Ok(date_time.fallback_value.clone()),
            TemplateParameter::Payload { payload } => Ok(payload.clone()),
            TemplateParameter::CouponCode { coupon_code } => Ok(coupon_code.clone()),
            _ => Err(invalid(
                "template.components",
                format!("the {part} takes text parameters"),
            )),
        })
        .collect()
}

/// The template component of `kind` (`BODY`, `HEADER`, …).
pub(super) fn component<'a>(components: &'a Value, kind: &str) -> Option<&'a Value> {
    components.as_array()?.iter().find(|c| {
        c["type"]
            .as_str()
            .is_some_and(|t| t.eq_ignore_ascii_case(kind))
    })
}

/// The `{{n}}` numbers of a text, in order of appearance.
pub fn placeholders(text: &str) -> Vec<usize> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        match after.find("}}") {
            Some(end) => {
                if let Ok(n) = after[..end].trim().parse::<usize>() {
                    out.push(n);
                }
                rest = &after[end + 2..];
            }
            None => break,
        }
    }
    out
}

pub(super) fn fill(text: &str, values: &[String]) -> String {
    let mut out = text.to_owned();
    for (i, v) in values.iter().enumerate() {
        out = out.replace(&format!("{{{{{}}}}}", i + 1), v);
    }
    out
}

/// The message a template renders to on an engine without templates: text (header, body,
/// footer), a media message when the header is media, reply buttons for quick replies where
/// the engine has buttons, and every other button as a line of text.
pub(super) fn render(
    name: &str,
    template: &Value,
    components: &[wharf_core::message::TemplateComponent],
    body_params: &[String],
    capabilities: &Capabilities,
) -> Result<Content, ServiceError> {
    let body = fill(
        component(template, "BODY")
            .and_then(|b| b["text"].as_str())
            .unwrap_or_default(),
        body_params,
    );
    let footer = component(template, "FOOTER")
        .and_then(|f| f["text"].as_str())
        .map(str::to_owned);
    let header_params: Vec<&TemplateParameter> = components
        .iter()
        .filter(|c| c.kind == TemplateComponentKind::Header)
        .flat_map(|c| c.parameters.iter())
        .collect();
    let mut header_text = None;
    let mut media = None;
    if let Some(h) = component(template, "HEADER") {
        let format = h["format"].as_str().unwrap_or("TEXT").to_ascii_uppercase();
        match format.as_str() {
            "TEXT" => {
                let text = h["text"].as_str().unwrap_or_default();
                let values = texts(&header_params, "header")?;
                let wanted = placeholders(text).len();
                if values.len() < wanted {
                    return Err(ServiceError::invalid_with(
                        "template_variable_missing",
                        "template.components",
                        format!("template {name}: the header's variable {{{{1}}}} is missing"),
                    ));
                }
                header_text = Some(fill(text, &values));
            }
            "IMAGE" | "VIDEO" | "DOCUMENT" => {
                let link = header_params
                    .iter()
                    .find_map(|p| match (p, format.as_str()) {
                        (TemplateParameter::Image { image }, "IMAGE") => Some(image.link.clone()),
                        (TemplateParameter::Video { video }, "VIDEO") => Some(video.link.clone()),
                        (TemplateParameter::Document { document }, "DOCUMENT") => {
                            Some(document.link.clone())
                        }
                        _ => None,
                    });
                let link = link.ok_or_else(|| {
                    ServiceError::invalid_with(
                        "template_variable_missing",
                        "template.components",
                        format!(
                            "template {name} has a {} header: give it as a header parameter",
                            format.to_ascii_lowercase()
                        ),
                    )
                })?;
                media = Some((
                    match format.as_str() {
                        "IMAGE" => MessageKind::Image,
                        "VIDEO" => MessageKind::Video,
                        _ => MessageKind::Document,
                    },
                    link,
                ));
            }
            _ => {}
        }
    }
    let mut replies = Vec::new();
    let mut lines = Vec::new();
    if let Some(buttons) = component(template, "BUTTONS").and_then(|b| b["buttons"].as_array()) {
        for (i, b) in buttons.iter().enumerate() {
            let label = b["text"].as_str().unwrap_or_default();
            let kind = b["type"].as_str().unwrap_or_default().to_ascii_uppercase();
            let param = components
                .iter()
                .find(|c| c.kind == TemplateComponentKind::Button && c.index == Some(i as u8))
                .map(|c| texts(&c.parameters.iter().collect::<Vec<_>>(), "button"))
                .transpose()?
                .unwrap_or_default();
            match kind.as_str() {
                "QUICK_REPLY" => replies.push(ReplyButton {
                    id: param.first().cloned().unwrap_or_else(|| label.to_owned()),
                    title: label.to_owned(),
                }),
                "URL" => {
                    let url = fill(b["url"].as_str().unwrap_or_default(), &param);
                    lines.push(format!("{label}: {url}"));
                }
                "PHONE_NUMBER" => lines.push(format!(
                    "{label}: {}",
                    b["phone_number"].as_str().unwrap_or_default()
                )),
                _ => lines.push(label.to_owned()),
            }
        }
    }
    let has_buttons = capabilities.kinds.contains(&MessageKind::Buttons);
    if media.is_none() && !replies.is_empty() && replies.len() <= 3 && has_buttons {
        let mut body = body;
        if !lines.is_empty() {
            body = format!("{body}\n\n{}", lines.join("\n"));
        }
        return Ok(Content::Buttons {
            body,
            header: header_text,
            footer,
            buttons: replies,
        });
    }
    lines.splice(0..0, replies.into_iter().map(|r| r.title));
    let mut parts: Vec<String> = Vec::new();
    if let Some(h) = header_text {
        parts.push(h);
    }
    parts.push(body);
    if let Some(f) = footer {
        parts.push(f);
    }
    if !lines.is_empty() {
        parts.push(lines.join("\n"));
    }
    let text = parts.join("\n\n");
    Ok(match media {
        Some((kind, url)) => Content::Media {
            media: kind,
            url,
            media_id: None,
            caption: Some(text),
            file_name: None,
            mime_type: None,
            view_once: false,
        },
        None => Content::Text { text },
    })
}

pub(super) fn check_name(name: &str) -> Result<(), ServiceError> {
    let ok = name.len() <= 512
        && name.as_bytes()[0].is_ascii_lowercase()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if !ok {
        return Err(invalid(
            "name",
            "must match ^[a-z][a-z0-9_]*$ (lowercase letters, digits and underscores, starting with a letter; at most 512)",
        ));
    }
    Ok(())
}

pub(super) fn check_language(language: &str) -> Result<(), ServiceError> {
    let (lang, region) = match language.split_once('_') {
        Some((l, r)) => (l, Some(r)),
        None => (language, None),
    };
    let ok = (2..=3).contains(&lang.len())
        && lang.bytes().all(|b| b.is_ascii_lowercase())
        && region.is_none_or(|r| {
            (2..=4).contains(&r.len()) && r.bytes().all(|b| b.is_ascii_alphanumeric())
        });
    if !ok {
        return Err(invalid(
            "language",
            "must be a language code such as en, en_US or pt_BR",
        ));
    }
    Ok(())
}

pub(super) fn text_field<'a>(
    c: &'a Map<String, Value>,
    key: &str,
    field: &str,
    max: usize,
) -> Result<&'a str, ServiceError> {
    let t = c
        .get(key)
        .and_then(Value::as_str)
        .filter(|t| !t.trim().is_empty())
        .ok_or_else(|| invalid(field, "is required"))?;
    if t.chars().count() > max {
        return Err(invalid(field, format!("must be at most {max} characters")));
    }
    Ok(t)
}

/// Checks components against Meta's rules; answers them with their `type` (and header
/// `format`, button `type`) in Meta's upper case.
pub fn check_components(components: &Value, field: &str) -> Result<Value, ServiceError> {
    let list = components
        .as_array()
        .ok_or_else(|| invalid(field, "must be an array"))?;
    if list.is_empty() {
        return Err(invalid(field, "must hold at least one component"));
    }
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut out = Vec::new();
    for (i, c) in list.iter().enumerate() {
        let at = format!("{field}[{i}]");
        let mut c = c
            .as_object()
            .cloned()
            .ok_or_else(|| invalid(&at, "must be an object"))?;
        let kind = c
            .get("type")
            .and_then(Value::as_str)
            .map(str::to_ascii_uppercase)
            .ok_or_else(|| invalid(&format!("{at}.type"), "is required"))?;
        if seen.insert(kind.clone(), i).is_some() {
            return Err(invalid(
                &format!("{at}.type"),
                format!("a template has at most one {kind} component"),
            ));
        }
        match kind.as_str() {
            "BODY" => {
                let text = text_field(&c, "text", &format!("{at}.text"), 1024)?;
                check_variables(text, &format!("{at}.text"), usize::MAX)?;
            }
            "HEADER" => {
                let format = c
                    .get("format")
                    .and_then(Value::as_str)
                    .unwrap_or("TEXT")
                    .to_ascii_uppercase();
                match format.as_str() {
                    "TEXT" => {
                        let text = text_field(&c, "text", &format!("{at}.text"), 60)?;
                        check_variables(text, &format!("{at}.text"), 1)?;
                    }
                    "IMAGE" | "VIDEO" | "DOCUMENT" | "LOCATION" => {}
                    _ => {
                        return Err(invalid(
                            &format!("{at}.format"),
                            "must be TEXT, IMAGE, VIDEO, DOCUMENT or LOCATION",
                        ));
                    }
                }
                c.insert("format".into(), json!(format));
            }
            "FOOTER" => {
                let text = text_field(&c, "text", &format!("{at}.text"), 60)?;
                if !placeholders(text).is_empty() || text.contains("{{") {
                    return Err(invalid(
                        &format!("{at}.text"),
                        "a footer cannot hold variables",
                    ));
                }
            }
            "BUTTONS" => {
                let buttons = check_buttons(c.get("buttons"), &format!("{at}.buttons"))?;
                c.insert("buttons".into(), buttons);
            }
            _ => {
                return Err(invalid(
                    &format!("{at}.type"),
                    "must be HEADER, BODY, FOOTER or BUTTONS",
                ));
            }
        }
        c.insert("type".into(), json!(kind));
        out.push(Value::Object(c));
    }
    if !seen.contains_key("BODY") {
        return Err(invalid(field, "a template needs a BODY component"));
    }
    Ok(Value::Array(out))
}

/// `{{1}}` to `{{n}}`, each number once and none skipped, at most `max` of them.
pub(super) fn check_variables(text: &str, field: &str, max: usize) -> Result<(), ServiceError> {
    let mut found = placeholders(text);
    if text.matches("{{").count() != found.len() {
        return Err(invalid(field, "variables are written {{1}}, {{2}}, …"));
    }
    if found.len() > max {
        return Err(invalid(field, format!("at most {max} variable(s)")));
    }
    found.sort_unstable();
    for (i, n) in found.iter().enumerate() {
        if *n != i + 1 {
            return Err(invalid(
                field,
                "variables must be numbered {{1}}, {{2}}, … in sequence, each once",
            ));
        }
    }
    Ok(())
}

pub(super) fn check_buttons(buttons: Option<&Value>, field: &str) -> Result<Value, ServiceError> {
    let list = buttons
        .and_then(Value::as_array)
        .ok_or_else(|| invalid(field, "is required (an array of buttons)"))?;
    if list.is_empty() || list.len() > 10 {
        return Err(invalid(field, "must hold 1 to 10 buttons"));
    }
    let (mut urls, mut phones) = (0, 0);
    let mut out = Vec::new();
    for (i, b) in list.iter().enumerate() {
        let at = format!("{field}[{i}]");
        let mut b = b
            .as_object()
            .cloned()
            .ok_or_else(|| invalid(&at, "must be an object"))?;
        let kind = b
            .get("type")
            .and_then(Value::as_str)
            .map(str::to_ascii_uppercase)
            .ok_or_else(|| invalid(&format!("{at}.type"), "is required"))?;
        text_field(&b, "text", &format!("{at}.text"), 25)?;
        match kind.as_str() {
            "QUICK_REPLY" | "COPY_CODE" | "OTP" => {}
            "URL" => {
                urls += 1;
                let url = text_field(&b, "url", &format!("{at}.url"), 2000)?;
                if !(url.starts_with("https://") || url.starts_with("http://")) {
                    return Err(invalid(&format!("{at}.url"), "must be an http(s) URL"));
                }
                check_variables(url, &format!("{at}.url"), 1)?;
                if url.contains("{{") && !url.ends_with("}}") {
                    return Err(invalid(
                        &format!("{at}.url"),
                        "a URL's variable must be at its end",
                    ));
                }
            }
            "PHONE_NUMBER" => {
                phones += 1;
                text_field(&b, "phone_number", &format!("{at}.phone_number"), 20)?;
            }
            _ => {
                return Err(invalid(
                    &format!("{at}.type"),
                    "must be QUICK_REPLY, URL, PHONE_NUMBER or COPY_CODE",
                ));
            }
        }
        b.insert("type".into(), json!(kind));
        out.push(Value::Object(b));
    }
    if urls > 2 {
        return Err(invalid(field, "at most 2 URL buttons"));
    }
    if phones > 1 {
        return Err(invalid(field, "at most 1 PHONE_NUMBER button"));
    }
    Ok(Value::Array(out))
}
