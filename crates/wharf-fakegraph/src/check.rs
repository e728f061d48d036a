//! Small JSON validation helpers; errors name the field at fault (`text.body must …`).

use serde_json::{Map, Value};

pub(crate) type Check<T> = Result<T, String>;
pub(crate) type Obj = Map<String, Value>;

fn at(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// `v` as an object.
pub(crate) fn object<'a>(v: &'a Value, path: &str) -> Check<&'a Obj> {
    v.as_object()
        .ok_or_else(|| format!("{path} must be an object"))
}

/// The object at `o[key]`, required.
pub(crate) fn req_obj<'a>(o: &'a Obj, key: &str, path: &str) -> Check<&'a Obj> {
    match o.get(key) {
        Some(v) => object(v, &at(path, key)),
        None => Err(format!("{} is required", at(path, key))),
    }
}

/// The object at `o[key]`, optional.
pub(crate) fn opt_obj<'a>(o: &'a Obj, key: &str, path: &str) -> Check<Option<&'a Obj>> {
    o.get(key).map(|v| object(v, &at(path, key))).transpose()
}

/// The array at `o[key]`, required, with a length in `min..=max`.
pub(crate) fn req_array<'a>(
    o: &'a Obj,
    key: &str,
    path: &str,
    min: usize,
    max: usize,
) -> Check<&'a Vec<Value>> {
    let p = at(path, key);
    let a = o
        .get(key)
        .ok_or_else(|| format!("{p} is required"))?
        .as_array()
        .ok_or_else(|| format!("{p} must be an array"))?;
    if a.len() < min || a.len() > max {
        return Err(format!(
            "{p} must have {min}..={max} items (has {})",
            a.len()
        ));
    }
    Ok(a)
}

/// Refuses keys outside `allowed`.
pub(crate) fn only_keys(o: &Obj, allowed: &[&str], path: &str) -> Check<()> {
    match o.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(format!("{} is not a valid parameter", at(path, k))),
        None => Ok(()),
    }
}

/// The string at `o[key]`, optional (present but not a string is an error).
pub(crate) fn opt_str<'a>(o: &'a Obj, key: &str, path: &str) -> Check<Option<&'a str>> {
    match o.get(key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(format!("{} must be a string", at(path, key))),
    }
}

/// The string at `o[key]`, required, with `min..=max` characters.
pub(crate) fn text<'a>(
    o: &'a Obj,
    key: &str,
    path: &str,
    min: usize,
    max: usize,
) -> Check<&'a str> {
    opt_text(o, key, path, min, max)?.ok_or_else(|| format!("{} is required", at(path, key)))
}

/// The string at `o[key]`, optional, with `min..=max` characters when present.
pub(crate) fn opt_text<'a>(
    o: &'a Obj,
    key: &str,
    path: &str,
    min: usize,
    max: usize,
) -> Check<Option<&'a str>> {
    let Some(s) = opt_str(o, key, path)? else {
        return Ok(None);
    };
    let n = s.chars().count();
    if n < min || n > max {
        return Err(format!(
            "{} must be {min}..={max} characters (has {n})",
            at(path, key)
        ));
    }
    Ok(Some(s))
}

/// The bool at `o[key]`, optional.
pub(crate) fn opt_bool(o: &Obj, key: &str, path: &str) -> Check<Option<bool>> {
    match o.get(key) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(format!("{} must be a boolean", at(path, key))),
    }
}

/// An absolute http(s) URL with a host.
pub(crate) fn is_http_url(s: &str) -> bool {
    let rest = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"));
    rest.is_some_and(|r| {
        let host = r.split(['/', '?', '#']).next().unwrap_or("");
        !host.is_empty() && !r.contains(char::is_whitespace)
    })
}

/// `index` of a template button component: an integer or a string of digits.
pub(crate) fn is_index(v: &Value) -> bool {
    match v {
        Value::Number(n) => n.as_u64().is_some(),
        Value::String(s) => !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()),
        _ => false,
    }
}

/// The distinct `{{…}}` placeholders in a template text.
pub(crate) fn placeholders(text: &str) -> usize {
    let mut seen: Vec<&str> = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else { break };
        let name = after[..end].trim();
        if !name.is_empty()
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !seen.contains(&name)
        {
            seen.push(name);
        }
        rest = &after[end + 2..];
    }
    seen.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_distinct_placeholders() {
        assert_eq!(placeholders("Hi {{1}}, order {{2}} for {{1}}"), 2);
        assert_eq!(placeholders("Hi {{customer_name}}"), 1);
        assert_eq!(placeholders("no params {{ }}"), 0);
    }

    #[test]
    fn urls() {
        assert!(is_http_url("https://x.io/a.jpg"));
        assert!(!is_http_url("ftp://x.io"));
        assert!(!is_http_url("https:///a"));
    }
}
