//! `POST /{phone-number-id}/messages`: strict validation of every message kind, mark-read,
//! throughput and deliverability rules, and the send record.

use std::{
    collections::HashSet,
    sync::Arc,
    time::{Duration, Instant},
};

use serde_json::{Value, json};

use crate::{
    check::{
        Check, Obj, is_http_url, is_index, object, only_keys, opt_bool, opt_obj, opt_str, opt_text,
        req_array, req_obj, text,
    },
    error::GraphError,
    state::{SendMeta, Shared, State, digits},
    types::RecordedSend,
    webhooks,
};

const TYPES: [&str; 11] = [
    "text",
    "image",
    "video",
    "audio",
    "document",
    "sticker",
    "location",
    "contacts",
    "interactive",
    "reaction",
    "template",
];

/// A validated send, before the stateful checks.
struct Plan<'a> {
    to: &'a str,
    digits: String,
    kind: &'a str,
    template: Option<TemplateRef<'a>>,
    callback: Option<&'a str>,
}

struct TemplateRef<'a> {
    name: &'a str,
    language: &'a str,
    body_params: usize,
}

/// `POST /{pnid}/messages`: a send, a mark-read or a typing indicator.
pub(crate) fn post_messages(
    sh: &Arc<Shared>,
    pnid: &str,
    body: &Value,
) -> Result<Value, GraphError> {
    let o = object(body, "body").map_err(GraphError::invalid)?;
    if o.contains_key("status") {
        return mark_read(sh, o);
    }
    let plan = validate(o).map_err(GraphError::invalid)?;
    let now = Instant::now();
    let mut guard = sh.lock();
    let st = &mut *guard;
    let num = st
        .numbers
        .get(pnid)
        .ok_or_else(|| GraphError::no_object("POST", pnid))?;
    let category = match &plan.template {
        Some(t) => template_category(st, &num.cfg.waba_id, t)?,
        None => "service".to_owned(),
    };
    let num = st.numbers.get_mut(pnid).expect("checked above");
    if let Some(cap) = num.cfg.throughput_cap {
        while num
            .recent
            .front()
            .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(1))
        {
            num.recent.pop_front();
        }
        if num.recent.len() >= cap as usize {
            return Err(GraphError {
                status: 400,
                ..GraphError::code(130_429, "Cloud API message throughput has been reached.")
            });
        }
    }
    if plan.digits == digits(&num.cfg.display_phone_number) {
        return Err(GraphError::code(131_021, "Recipient cannot be sender."));
    }
    if num.not_on_whatsapp.contains(&plan.digits) {
        return Err(GraphError::code(
            131_026,
            "Message Undeliverable: the recipient is not a WhatsApp user.",
        ));
    }
    let wamid = sh.wamid(&plan.digits, true);
    num.send_count += 1;
    if num.cfg.throughput_cap.is_some() {
        num.recent.push_back(now);
    }
    st.send_meta.insert(
        wamid.clone(),
        SendMeta {
            pnid: pnid.to_owned(),
            recipient: plan.digits.clone(),
            category,
            conversation: format!("{:032x}", rand::random::<u128>()),
            callback: plan.callback.map(str::to_owned),
        },
    );
    st.sends.push(RecordedSend {
        phone_number_id: pnid.to_owned(),
        to: plan.to.to_owned(),
        kind: plan.kind.to_owned(),
        body: body.clone(),
        wamid: wamid.clone(),
        at: now,
    });
    let auto =
        sh.auto_statuses.load(std::sync::atomic::Ordering::Relaxed) && st.webhook_url.is_some();
    drop(guard);
    let mut message = json!({ "id": wamid });
    if plan.template.is_some() {
        message["message_status"] = json!("accepted");
    }
    if auto {
        webhooks::spawn_auto_statuses(sh.clone(), wamid);
    }
    Ok(json!({
        "messaging_product": "whatsapp",
        "contacts": [{"input": plan.to, "wa_id": plan.digits}],
        "messages": [message],
    }))
}

/// The pricing category of an approved template, or the Graph error a send of it gets.
fn template_category(st: &State, waba: &str, t: &TemplateRef<'_>) -> Result<String, GraphError> {
    let missing = || {
        GraphError::code(
            132_001,
            format!(
                "template name ({}) does not exist in {}",
                t.name, t.language
            ),
        )
    };
    let ids = st.waba_templates.get(waba).ok_or_else(missing)?;
    let tpl = ids
        .iter()
        .filter_map(|id| st.templates.get(id))
        .find(|x| x.name == t.name && x.language == t.language)
        .ok_or_else(missing)?;
    match tpl.status.as_str() {
        "APPROVED" => {}
        "PAUSED" => return Err(GraphError::code(132_015, "Template is paused.")),
        "DISABLED" => return Err(GraphError::code(132_016, "Template is disabled.")),
        _ => return Err(missing()),
    }
    if tpl.body_params != t.body_params {
        return Err(GraphError::code(
            132_000,
            format!(
                "body: number of localizable_params ({}) does not match the expected number of \
                 params ({})",
                t.body_params, tpl.body_params
            ),
        ));
    }
    Ok(tpl.category.to_ascii_lowercase())
}

/// Mark-read (and typing indicator): only ids the fake delivered as inbound are valid.
fn mark_read(sh: &Shared, o: &Obj) -> Result<Value, GraphError> {
    let check = || -> Check<&str> {
        only_keys(
            o,
            &[
                "messaging_product",
                "status",
                "message_id",
                "typing_indicator",
            ],
            "",
        )?;
        if o.get("status") != Some(&json!("read")) {
            return Err("status must be \"read\"".into());
        }
        let id = text(o, "message_id", "", 1, 1024)?;
        if let Some(t) = opt_obj(o, "typing_indicator", "")? {
            only_keys(t, &["type"], "typing_indicator")?;
            if t.get("type") != Some(&json!("text")) {
                return Err("typing_indicator.type must be \"text\"".into());
            }
        }
        Ok(id)
    };
    let id = check().map_err(GraphError::invalid)?;
    if !sh.lock().inbound_ids.contains(id) {
        return Err(GraphError::code(
            131_009,
            format!("message_id {id} is not a valid inbound message id"),
        ));
    }
    Ok(json!({"success": true}))
}

fn validate(o: &Obj) -> Check<Plan<'_>> {
    const ENVELOPE: [&str; 6] = [
        "messaging_product",
        "recipient_type",
        "to",
        "type",
        "context",
        "biz_opaque_callback_data",
    ];
    match o.get("messaging_product") {
        Some(Value::String(s)) if s == "whatsapp" => {}
        None => return Err("messaging_product is required".into()),
        Some(_) => return Err("messaging_product must be \"whatsapp\"".into()),
    }
    if let Some(rt) = opt_str(o, "recipient_type", "")?
        && rt != "individual"
    {
        return Err("recipient_type must be \"individual\"".into());
    }
    let to = opt_str(o, "to", "")?.ok_or("to is required")?;
    let d = to.strip_prefix('+').unwrap_or(to);
    if !d.bytes().all(|b| b.is_ascii_digit()) || !(7..=15).contains(&d.len()) {
        return Err(format!(
            "to must be 7..=15 digits with an optional leading + (got {to:?})"
        ));
    }
    let kind = opt_str(o, "type", "")?.unwrap_or("text");
    if !TYPES.contains(&kind) {
        return Err(format!("type {kind:?} is not a valid message type"));
    }
    if let Some(k) = o
        .keys()
        .find(|k| !ENVELOPE.contains(&k.as_str()) && !TYPES.contains(&k.as_str()))
    {
        return Err(format!("{k} is not a valid parameter"));
    }
    if let Some(other) = TYPES.iter().find(|t| **t != kind && o.contains_key(**t)) {
        return Err(format!("{other} is not allowed when type is {kind}"));
    }
    let payload = object(
        o.get(kind).ok_or_else(|| format!("{kind} is required"))?,
        kind,
    );
    let mut template = None;
    match kind {
        "text" => {
            let p = payload?;
            only_keys(p, &["body", "preview_url"], "text")?;
            text(p, "body", "text", 1, 4096)?;
            opt_bool(p, "preview_url", "text")?;
        }
        "image" | "video" | "audio" | "document" | "sticker" => media(kind, payload?)?,
        "location" => location(payload?)?,
        "contacts" => contacts(&o["contacts"])?,
        "interactive" => interactive(payload?)?,
        "reaction" => {
            let p = payload?;
            only_keys(p, &["message_id", "emoji"], "reaction")?;
            text(p, "message_id", "reaction", 1, 1024)?;
            opt_str(p, "emoji", "reaction")?.ok_or("reaction.emoji is required")?;
        }
        _ => template = Some(template_ref(payload?)?),
    }
    if let Some(c) = opt_obj(o, "context", "")? {
        only_keys(c, &["message_id"], "context")?;
        text(c, "message_id", "context", 1, 1024)?;
    }
    let callback = opt_text(o, "biz_opaque_callback_data", "", 0, 512)?;
    Ok(Plan {
        to,
        digits: d.to_owned(),
        kind,
        template,
        callback,
    })
}

fn media(kind: &str, p: &Obj) -> Check<()> {
    let allowed: &[&str] = match kind {
        "image" | "video" => &["link", "id", "caption"],
        "document" => &["link", "id", "caption", "filename"],
        "audio" => &["link", "id", "voice"],
        _ => &["link", "id"],
    };
    only_keys(p, allowed, kind)?;
    match (opt_str(p, "link", kind)?, opt_str(p, "id", kind)?) {
        (Some(link), None) if is_http_url(link) => {}
        (Some(link), None) => return Err(format!("{kind}.link {link:?} is not an http(s) URL")),
        (None, Some(id)) if !id.is_empty() => {}
        (None, Some(_)) => return Err(format!("{kind}.id must not be empty")),
        _ => return Err(format!("{kind} needs exactly one of link or id")),
    }
    opt_text(p, "caption", kind, 0, 1024)?;
    opt_text(p, "filename", kind, 1, 240)?;
    opt_bool(p, "voice", kind)?;
    Ok(())
}

fn location(p: &Obj) -> Check<()> {
    only_keys(p, &["latitude", "longitude", "name", "address"], "location")?;
    for (key, max) in [("latitude", 90.0), ("longitude", 180.0)] {
        let v = p
            .get(key)
            .ok_or_else(|| format!("location.{key} is required"))?
            .as_f64()
            .ok_or_else(|| format!("location.{key} must be a number"))?;
        if !(-max..=max).contains(&v) {
            return Err(format!("location.{key} must be within ±{max}"));
        }
    }
    opt_str(p, "name", "location")?;
    opt_str(p, "address", "location")?;
    Ok(())
}

fn contacts(v: &Value) -> Check<()> {
    let list = v.as_array().ok_or("contacts must be an array")?;
    if list.is_empty() {
        return Err("contacts must not be empty".into());
    }
    for (i, c) in list.iter().enumerate() {
        let path = format!("contacts[{i}]");
        let c = object(c, &path)?;
        let name = req_obj(c, "name", &path)?;
        text(name, "formatted_name", &format!("{path}.name"), 1, 1024)?;
    }
    Ok(())
}

fn interactive(p: &Obj) -> Check<()> {
    only_keys(
        p,
        &["type", "header", "body", "footer", "action"],
        "interactive",
    )?;
    let kind = opt_str(p, "type", "interactive")?.ok_or("interactive.type is required")?;
    let body = req_obj(p, "body", "interactive")?;
    only_keys(body, &["text"], "interactive.body")?;
    let body_max = if kind == "list" { 4096 } else { 1024 };
    text(body, "text", "interactive.body", 1, body_max)?;
    if let Some(f) = opt_obj(p, "footer", "interactive")? {
        only_keys(f, &["text"], "interactive.footer")?;
        text(f, "text", "interactive.footer", 1, 60)?;
    }
    if let Some(h) = opt_obj(p, "header", "interactive")? {
        let ht = opt_str(h, "type", "interactive.header")?
            .ok_or("interactive.header.type is required")?;
        match ht {
            "text" => {
                only_keys(h, &["type", "text"], "interactive.header")?;
                text(h, "text", "interactive.header", 1, 60)?;
            }
            "image" | "video" | "document" if kind != "list" => {
                only_keys(h, &["type", ht], "interactive.header")?;
                media(ht, req_obj(h, ht, "interactive.header")?)?;
            }
            _ => return Err(format!("interactive.header.type {ht:?} is not valid here")),
        }
    }
    let action = req_obj(p, "action", "interactive")?;
    match kind {
        "button" => buttons(action),
        "list" => list(action),
        "cta_url" => {
            only_keys(action, &["name", "parameters"], "interactive.action")?;
            if action.get("name") != Some(&json!("cta_url")) {
                return Err("interactive.action.name must be \"cta_url\"".into());
            }
            let params = req_obj(action, "parameters", "interactive.action")?;
            text(
                params,
                "display_text",
                "interactive.action.parameters",
                1,
                20,
            )?;
            let url = text(params, "url", "interactive.action.parameters", 1, 2000)?;
            if !is_http_url(url) {
                return Err("interactive.action.parameters.url is not an http(s) URL".into());
            }
            Ok(())
        }
        other => Err(format!("interactive.type {other:?} is not supported")),
    }
}

fn buttons(action: &Obj) -> Check<()> {
    only_keys(action, &["buttons"], "interactive.action")?;
    let list = req_array(action, "buttons", "interactive.action", 1, 3)?;
    let mut ids = HashSet::new();
    for (i, b) in list.iter().enumerate() {
        let path = format!("interactive.action.buttons[{i}]");
        let b = object(b, &path)?;
        only_keys(b, &["type", "reply"], &path)?;
        if b.get("type") != Some(&json!("reply")) {
            return Err(format!("{path}.type must be \"reply\""));
        }
        let reply = req_obj(b, "reply", &path)?;
        let rp = format!("{path}.reply");
        only_keys(reply, &["id", "title"], &rp)?;
        let id = text(reply, "id", &rp, 1, 256)?;
        text(reply, "title", &rp, 1, 20)?;
        if !ids.insert(id) {
            return Err(format!("{rp}.id {id:?} is not unique"));
        }
    }
    Ok(())
}

fn list(action: &Obj) -> Check<()> {
    only_keys(action, &["button", "sections"], "interactive.action")?;
    text(action, "button", "interactive.action", 1, 20)?;
    let sections = req_array(action, "sections", "interactive.action", 1, 10)?;
    let mut ids = HashSet::new();
    for (i, s) in sections.iter().enumerate() {
        let path = format!("interactive.action.sections[{i}]");
        let s = object(s, &path)?;
        only_keys(s, &["title", "rows"], &path)?;
        if sections.len() > 1 {
            text(s, "title", &path, 1, 24)?;
        } else {
            opt_text(s, "title", &path, 1, 24)?;
        }
        let rows = req_array(s, "rows", &path, 1, 10)?;
        for (j, r) in rows.iter().enumerate() {
            let rp = format!("{path}.rows[{j}]");
            let r = object(r, &rp)?;
            only_keys(r, &["id", "title", "description"], &rp)?;
            let id = text(r, "id", &rp, 1, 200)?;
            text(r, "title", &rp, 1, 24)?;
            opt_text(r, "description", &rp, 0, 72)?;
            if !ids.insert(id) {
                return Err(format!("{rp}.id {id:?} is not unique"));
            }
        }
    }
    if ids.len() > 10 {
        return Err(format!(
            "interactive.action.sections must hold 1..=10 rows in total (has {})",
            ids.len()
        ));
    }
    Ok(())
}

fn template_ref(p: &Obj) -> Check<TemplateRef<'_>> {
    only_keys(
        p,
        &["name", "language", "components", "namespace"],
        "template",
    )?;
    let name = text(p, "name", "template", 1, 512)?;
    let lang = req_obj(p, "language", "template")?;
    only_keys(lang, &["code", "policy"], "template.language")?;
    let language = text(lang, "code", "template.language", 1, 16)?;
    let mut body_params = 0;
    if let Some(c) = p.get("components") {
        let comps = c.as_array().ok_or("template.components must be an array")?;
        for (i, comp) in comps.iter().enumerate() {
            let path = format!("template.components[{i}]");
            let comp = object(comp, &path)?;
            only_keys(comp, &["type", "sub_type", "index", "parameters"], &path)?;
            let kind = opt_str(comp, "type", &path)?
                .ok_or_else(|| format!("{path}.type is required"))?
                .to_ascii_lowercase();
            let params = match comp.get("parameters") {
                None => 0,
                Some(v) => {
                    let ps = v
                        .as_array()
                        .ok_or_else(|| format!("{path}.parameters must be an array"))?;
                    for (j, param) in ps.iter().enumerate() {
                        parameter(param, &format!("{path}.parameters[{j}]"))?;
                    }
                    ps.len()
                }
            };
            match kind.as_str() {
                "body" => body_params += params,
                "header" => {}
                "button" => {
                    text(comp, "sub_type", &path, 1, 64)?;
                    let index = comp
                        .get("index")
                        .ok_or_else(|| format!("{path}.index is required"))?;
                    if !is_index(index) {
                        return Err(format!("{path}.index must be an integer or digit string"));
                    }
                }
                other => {
                    return Err(format!(
                        "{path}.type {other:?} must be header, body or button"
                    ));
                }
            }
        }
    }
    Ok(TemplateRef {
        name,
        language,
        body_params,
    })
}

fn parameter(v: &Value, path: &str) -> Check<()> {
    let p = object(v, path)?;
    let kind = opt_str(p, "type", path)?.ok_or_else(|| format!("{path}.type is required"))?;
    match kind {
        "text" => {
            text(p, "text", path, 1, 32_768)?;
        }
        "payload" => {
            text(p, "payload", path, 1, 256)?;
        }
        "image" | "video" | "document" => media(kind, req_obj(p, kind, path)?)?,
        "currency" | "date_time" | "location" | "coupon_code" | "action" => {
            if !p.contains_key(kind) {
                return Err(format!("{path}.{kind} is required"));
            }
        }
        other => {
            return Err(format!(
                "{path}.type {other:?} is not a valid parameter type"
            ));
        }
    }
    opt_str(p, "parameter_name", path)?;
    Ok(())
}
