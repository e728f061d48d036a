//! Phone numbers (listing, verification, registration), the business profile and the WABA.

use std::collections::HashMap;

use serde_json::{Map, Value, json};

use crate::{
    check::{Check, is_http_url, object, only_keys, opt_str, opt_text, text},
    error::GraphError,
    state::{NumberState, Shared},
};

const NUMBER_DEFAULT: [&str; 7] = [
    "id",
    "display_phone_number",
    "verified_name",
    "code_verification_status",
    "quality_rating",
    "platform_type",
    "throughput",
];
const NUMBER_EXTRA: [&str; 6] = [
    "name_status",
    "status",
    "messaging_limit_tier",
    "account_mode",
    "is_official_business_account",
    "is_pin_enabled",
];
const PROFILE_FIELDS: [&str; 7] = [
    "about",
    "address",
    "description",
    "email",
    "profile_picture_url",
    "websites",
    "vertical",
];
const VERTICALS: [&str; 24] = [
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

/// The requested `fields`, validated against `known`; `None` when absent.
pub(crate) fn fields(
    q: &HashMap<String, String>,
    known: &[&str],
    node: &str,
) -> Result<Option<Vec<String>>, GraphError> {
    let Some(f) = q.get("fields") else {
        return Ok(None);
    };
    let list: Vec<String> = f
        .split(',')
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect();
    if let Some(bad) = list.iter().find(|f| !known.contains(&f.as_str())) {
        return Err(GraphError::invalid(format!(
            "fields: tried accessing nonexisting field ({bad}) on node type ({node})"
        )));
    }
    Ok(Some(list))
}

fn number_json(n: &NumberState, fields: Option<&[String]>) -> Value {
    let value = |f: &str| -> Value {
        match f {
            "id" => json!(n.cfg.phone_number_id),
            "display_phone_number" => json!(n.cfg.display_phone_number),
            "verified_name" => json!(n.cfg.verified_name),
            "code_verification_status" => json!(n.verification),
            "quality_rating" => json!("GREEN"),
            "platform_type" => json!("CLOUD_API"),
            "throughput" => json!({"level": "STANDARD"}),
            "name_status" => json!("APPROVED"),
            "status" => json!(if n.registered {
                "CONNECTED"
            } else {
                "DISCONNECTED"
            }),
            "messaging_limit_tier" => json!("TIER_1K"),
            "account_mode" => json!("LIVE"),
            "is_official_business_account" => json!(false),
            "is_pin_enabled" => json!(true),
            _ => Value::Null,
        }
    };
    let mut out = Map::new();
    match fields {
        None => NUMBER_DEFAULT.iter().for_each(|f| {
            out.insert((*f).to_owned(), value(f));
        }),
        Some(list) => list.iter().map(String::as_str).chain(["id"]).for_each(|f| {
            out.insert(f.to_owned(), value(f));
        }),
    }
    Value::Object(out)
}

fn number_fields(q: &HashMap<String, String>) -> Result<Option<Vec<String>>, GraphError> {
    let known: Vec<&str> = NUMBER_DEFAULT
        .iter()
        .chain(&NUMBER_EXTRA)
        .copied()
        .collect();
    fields(q, &known, "WhatsAppBusinessPhoneNumber")
}

/// `GET /{pnid}`.
pub(crate) fn get_number(
    sh: &Shared,
    pnid: &str,
    q: &HashMap<String, String>,
) -> Result<Value, GraphError> {
    let fields = number_fields(q)?;
    let st = sh.lock();
    let n = st
        .numbers
        .get(pnid)
        .ok_or_else(|| GraphError::no_object("GET", pnid))?;
    Ok(number_json(n, fields.as_deref()))
}

/// `GET /{waba}/phone_numbers`.
pub(crate) fn list_numbers(
    sh: &Shared,
    waba: &str,
    q: &HashMap<String, String>,
) -> Result<Value, GraphError> {
    let fields = number_fields(q)?;
    let st = sh.lock();
    let data: Vec<Value> = st
        .wabas
        .get(waba)
        .into_iter()
        .flatten()
        .filter_map(|p| st.numbers.get(p))
        .map(|n| number_json(n, fields.as_deref()))
        .collect();
    let mut out = json!({ "data": data });
    if !data_is_empty(&out) {
        out["paging"] = json!({"cursors": {"before": "QVFIUk", "after": "QVFIUk"}});
    }
    Ok(out)
}

fn data_is_empty(v: &Value) -> bool {
    v["data"].as_array().is_none_or(Vec::is_empty)
}

/// `GET /{waba}`.
pub(crate) fn get_waba(sh: &Shared, waba: &str) -> Value {
    let st = sh.lock();
    let name = st
        .wabas
        .get(waba)
        .and_then(|ids| ids.first())
        .and_then(|p| st.numbers.get(p))
        .map(|n| n.cfg.verified_name.clone())
        .unwrap_or_default();
    json!({
        "id": waba,
        "name": name,
        "currency": "USD",
        "timezone_id": "1",
        "message_template_namespace": format!("fake_{waba}"),
    })
}

/// Merges the query and a JSON/form body into one parameter map (Meta accepts either).
fn params(q: &HashMap<String, String>, body: &Value) -> Check<Map<String, Value>> {
    let mut out: Map<String, Value> = q
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    match body {
        Value::Null => {}
        Value::Object(o) => out.extend(o.iter().map(|(k, v)| (k.clone(), v.clone()))),
        _ => return Err("body must be an object".into()),
    }
    Ok(out)
}

/// `POST /{pnid}/request_code` (`code_method` SMS|VOICE, `language`).
pub(crate) fn request_code(
    sh: &Shared,
    pnid: &str,
    q: &HashMap<String, String>,
    body: &Value,
) -> Result<Value, GraphError> {
    let check = || -> Check<()> {
        let p = params(q, body)?;
        only_keys(&p, &["code_method", "language"], "")?;
        match opt_str(&p, "code_method", "")? {
            Some("SMS" | "VOICE") => {}
            Some(m) => return Err(format!("code_method {m:?} must be SMS or VOICE")),
            None => return Err("code_method is required".into()),
        }
        text(&p, "language", "", 2, 16)?;
        Ok(())
    };
    check().map_err(GraphError::invalid)?;
    if let Some(n) = sh.lock().numbers.get_mut(pnid) {
        n.code_requested = true;
    }
    Ok(json!({"success": true}))
}

/// `POST /{pnid}/verify_code` (`code`; the right one is `123456`).
pub(crate) fn verify_code(
    sh: &Shared,
    pnid: &str,
    q: &HashMap<String, String>,
    body: &Value,
) -> Result<Value, GraphError> {
    let check = || -> Check<String> {
        let p = params(q, body)?;
        only_keys(&p, &["code"], "")?;
        match p.get("code") {
            Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
            Some(Value::Number(n)) => Ok(n.to_string()),
            Some(_) => Err("code must be a string".into()),
            None => Err("code is required".into()),
        }
    };
    let code = check().map_err(GraphError::invalid)?;
    if code != "123456" {
        return Err(GraphError {
            message: "(#136025) Verification code is incorrect".into(),
            ..GraphError::code(136_025, "The verification code you entered is incorrect.")
        });
    }
    if let Some(n) = sh.lock().numbers.get_mut(pnid) {
        n.verification = "VERIFIED";
    }
    Ok(json!({"success": true}))
}

/// `POST /{pnid}/register` (`messaging_product`, 6-digit `pin`) and `POST /{pnid}/deregister`.
pub(crate) fn register(
    sh: &Shared,
    pnid: &str,
    body: &Value,
    on: bool,
) -> Result<Value, GraphError> {
    let check = || -> Check<()> {
        if !on && body.is_null() {
            return Ok(());
        }
        let o = object(body, "body")?;
        if on {
            only_keys(
                o,
                &["messaging_product", "pin", "data_localization_region"],
                "",
            )?;
            let pin = opt_str(o, "pin", "")?.ok_or("pin is required")?;
            if pin.len() != 6 || !pin.bytes().all(|b| b.is_ascii_digit()) {
                return Err("pin must be 6 digits".into());
            }
        } else {
            only_keys(o, &["messaging_product"], "")?;
        }
        match opt_str(o, "messaging_product", "")? {
            Some("whatsapp") => Ok(()),
            None if !on => Ok(()),
            _ => Err("messaging_product must be \"whatsapp\"".into()),
        }
    };
    check().map_err(GraphError::invalid)?;
    if let Some(n) = sh.lock().numbers.get_mut(pnid) {
        n.registered = on;
    }
    Ok(json!({"success": true}))
}

/// `GET /{pnid}/whatsapp_business_profile?fields=…`.
pub(crate) fn get_profile(
    sh: &Shared,
    pnid: &str,
    q: &HashMap<String, String>,
) -> Result<Value, GraphError> {
    let fields = fields(q, &PROFILE_FIELDS, "WhatsAppBusinessProfile")?;
    let st = sh.lock();
    let n = st
        .numbers
        .get(pnid)
        .ok_or_else(|| GraphError::no_object("GET", pnid))?;
    let mut out: Map<String, Value> = n
        .profile
        .iter()
        .filter(|(k, _)| fields.as_ref().is_none_or(|f| f.contains(k)))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    out.insert("messaging_product".into(), json!("whatsapp"));
    Ok(json!({ "data": [out] }))
}

/// The stored profile of a number, as GET would answer it with every field.
pub(crate) fn profile_of(sh: &Shared, pnid: &str) -> Value {
    let st = sh.lock();
    let mut out = st
        .numbers
        .get(pnid)
        .map(|n| n.profile.clone())
        .unwrap_or_default();
    out.insert("messaging_product".into(), json!("whatsapp"));
    Value::Object(out)
}

/// `POST /{pnid}/whatsapp_business_profile`.
pub(crate) fn update_profile(sh: &Shared, pnid: &str, body: &Value) -> Result<Value, GraphError> {
    let check = || -> Check<Map<String, Value>> {
        let o = object(body, "body")?;
        only_keys(
            o,
            &[
                "messaging_product",
                "about",
                "address",
                "description",
                "email",
                "websites",
                "vertical",
                "profile_picture_handle",
            ],
            "",
        )?;
        if o.get("messaging_product") != Some(&json!("whatsapp")) {
            return Err("messaging_product must be \"whatsapp\"".into());
        }
        let mut set = Map::new();
        for (key, min, max) in [
            ("about", 1, 139),
            ("address", 0, 256),
            ("description", 0, 512),
        ] {
            if let Some(v) = opt_text(o, key, "", min, max)? {
                set.insert(key.into(), json!(v));
            }
        }
        if let Some(email) = opt_text(o, "email", "", 0, 128)? {
            if !email.is_empty() && !is_email(email) {
                return Err(format!("email {email:?} is not a valid email address"));
            }
            set.insert("email".into(), json!(email));
        }
        if let Some(w) = o.get("websites") {
            let list = w.as_array().ok_or("websites must be an array")?;
            if list.len() > 2 {
                return Err(format!(
                    "websites must hold at most 2 URLs (has {})",
                    list.len()
                ));
            }
            for (i, url) in list.iter().enumerate() {
                if !url
                    .as_str()
                    .is_some_and(|u| is_http_url(u) && u.len() <= 256)
                {
                    return Err(format!(
                        "websites[{i}] must be an http(s) URL of ≤256 characters"
                    ));
                }
            }
            set.insert("websites".into(), w.clone());
        }
        if let Some(v) = opt_str(o, "vertical", "")? {
            if !VERTICALS.contains(&v) {
                return Err(format!("vertical {v:?} is not a valid business category"));
            }
            set.insert("vertical".into(), json!(v));
        }
        if let Some(h) = opt_text(o, "profile_picture_handle", "", 1, 4096)? {
            set.insert(
                "profile_picture_url".into(),
                json!(format!("https://pps.whatsapp.net/v/fake/{}.jpg", h.len())),
            );
        }
        Ok(set)
    };
    let set = check().map_err(GraphError::invalid)?;
    let mut st = sh.lock();
    let n = st
        .numbers
        .get_mut(pnid)
        .ok_or_else(|| GraphError::no_object("POST", pnid))?;
    n.profile.extend(set);
    Ok(json!({"success": true}))
}

fn is_email(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && !s.contains(char::is_whitespace)
        && !domain.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
}
