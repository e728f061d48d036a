//! Hand-rolled wire formats (URL encoding, multipart/form-data), to keep dependencies lean.

use std::collections::HashMap;

use axum::body::Bytes;

/// Decodes `application/x-www-form-urlencoded` pairs (also used for query strings).
/// The first occurrence of a key wins.
pub(crate) fn parse_form(s: &str) -> Result<HashMap<String, String>, String> {
    let mut out = HashMap::new();
    for pair in s.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        out.entry(decode(k)?).or_insert(decode(v)?);
    }
    Ok(out)
}

fn decode(s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = s
                    .get(i + 1..i + 3)
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| format!("bad percent-encoding in {s:?}"))?;
                out.push(hex);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| format!("{s:?} is not UTF-8"))
}

/// Percent-encodes a query value (keeps unreserved characters and `,`).
pub(crate) fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~,".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// One part of a multipart/form-data body.
pub(crate) struct Part {
    pub name: String,
    pub filename: Option<String>,
    pub data: Bytes,
}

/// Parses a multipart/form-data body given its `Content-Type` header.
pub(crate) fn parse_multipart(content_type: &str, body: &Bytes) -> Result<Vec<Part>, String> {
    let boundary = content_type
        .split(';')
        .map(str::trim)
        .find_map(|p| p.strip_prefix("boundary="))
        .map(|b| b.trim_matches('"'))
        .filter(|b| !b.is_empty())
        .ok_or("multipart Content-Type without boundary")?;
    let delim = format!("--{boundary}");
    let delim = delim.as_bytes();
    let mut pos = find(body, delim, 0).ok_or("multipart body without boundary")? + delim.len();
    let mut parts = Vec::new();
    loop {
        if body[pos..].starts_with(b"--") {
            return Ok(parts);
        }
        if !body[pos..].starts_with(b"\r\n") {
            return Err("malformed multipart boundary line".into());
        }
        pos += 2;
        let head_end = find(body, b"\r\n\r\n", pos).ok_or("multipart part without headers")?;
        let head = std::str::from_utf8(&body[pos..head_end])
            .map_err(|_| "multipart headers are not UTF-8")?;
        let data_start = head_end + 4;
        let mut close = Vec::with_capacity(delim.len() + 2);
        close.extend_from_slice(b"\r\n");
        close.extend_from_slice(delim);
        let data_end = find(body, &close, data_start).ok_or("unterminated multipart part")?;
        parts.push(part(head, body.slice(data_start..data_end))?);
        pos = data_end + close.len();
    }
}

fn part(head: &str, data: Bytes) -> Result<Part, String> {
    let mut name = None;
    let mut filename = None;
    for line in head.split("\r\n") {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        if key.trim().eq_ignore_ascii_case("content-disposition") {
            for param in value.split(';').map(str::trim) {
                if let Some(v) = param.strip_prefix("name=") {
                    name = Some(v.trim_matches('"').to_owned());
                } else if let Some(v) = param.strip_prefix("filename=") {
                    filename = Some(v.trim_matches('"').to_owned());
                }
            }
        }
    }
    Ok(Part {
        name: name.ok_or("multipart part without a name")?,
        filename,
        data,
    })
}

fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    let first = *needle.first()?;
    let mut i = from;
    while i + needle.len() <= hay.len() {
        let off = hay[i..=hay.len() - needle.len()]
            .iter()
            .position(|&b| b == first)?;
        i += off;
        if &hay[i..i + needle.len()] == needle {
            return Some(i);
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_decoding() {
        let q = parse_form("a=1&b=x%20y+z&a=2&c").unwrap();
        assert_eq!(q["a"], "1");
        assert_eq!(q["b"], "x y z");
        assert_eq!(q["c"], "");
        assert!(parse_form("a=%zz").is_err());
        assert_eq!(encode("MA== x,y"), "MA%3D%3D%20x,y");
    }

    #[test]
    fn multipart_round_trip() {
        let body = Bytes::from_static(
            b"--XX\r\nContent-Disposition: form-data; name=\"type\"\r\n\r\nimage/png\r\n\
              --XX\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.png\"\r\n\
              Content-Type: image/png\r\n\r\n\x89PNG\r\n--X\r\n--XX--\r\n",
        );
        let parts = parse_multipart("multipart/form-data; boundary=XX", &body).unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].name, "type");
        assert_eq!(&parts[0].data[..], b"image/png");
        assert_eq!(parts[1].filename.as_deref(), Some("a.png"));
        assert_eq!(&parts[1].data[..], b"\x89PNG\r\n--X");
        assert!(parse_multipart("multipart/form-data", &body).is_err());
    }
}
