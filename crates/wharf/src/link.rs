//! `wharf sessions link SESSION_ID`: links a phone to a session of a running Wharf, from a
//! shell. It talks to the server over HTTP with a personal access token (or the session's
//! key): connects the session when it is not running, prints the current QR code in the
//! terminal with Unicode half blocks (again each time WhatsApp rotates it), optionally asks
//! for a pair code, and returns once the session is connected. It fails, with the server's
//! reason, when the session stops instead (QR codes exhausted, logged out, refused, …).

use std::time::Duration;

use anyhow::{Context, bail};
use qrcode::{QrCode, render::unicode::Dense1x2};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// What the command was asked.
#[derive(Debug, Clone)]
pub struct LinkArgs {
    /// `http(s)://host:port` of the running server.
    pub url: String,
    /// A personal access token (or the session's key).
    pub token: String,
    pub session_id: String,
    /// Ask for a pair code for this number instead of (as well as) scanning the QR.
    pub pair_code: Option<String>,
    /// Give up after this long without a link.
    pub timeout: Duration,
    /// How often the session is polled.
    pub poll: Duration,
    /// Draw dark modules as blocks (for terminals with a light background).
    pub invert: bool,
}

/// How the wait for a link ended, when it did not end with one.
#[derive(Debug)]
pub struct LinkFailed(pub String);

impl std::fmt::Display for LinkFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for LinkFailed {}

struct Api {
    client: reqwest::Client,
    base: String,
    token: String,
}

impl Api {
    /// Calls `path`; returns the status and the JSON body (`Null` when there is none).
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<(StatusCode, Value)> {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let answer = request
            .send()
            .await
            .with_context(|| format!("cannot reach Wharf at {}", self.base))?;
        let status = answer.status();
        let text = answer.text().await.unwrap_or_default();
        let value = serde_json::from_str(&text).unwrap_or(Value::Null);
        Ok((status, value))
    }

    /// Like [`Api::call`], failing on any answer but 2xx with the server's message.
    async fn ok(&self, method: Method, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
        let (status, value) = self.call(method, path, body).await?;
        if !status.is_success() {
            bail!(LinkFailed(format!("{path}: {}", describe(status, &value))));
        }
        Ok(value)
    }
}

/// The server's error, as a person reads it.
fn describe(status: StatusCode, body: &Value) -> String {
    match (body["reason_code"].as_str(), body["message"].as_str()) {
        (Some(code), Some(message)) => format!("{status}: {message} ({code})"),
        (_, Some(message)) => format!("{status}: {message}"),
        _ => status.to_string(),
    }
}

/// The QR payload drawn with Unicode half blocks (two modules a character), quiet zone
/// included. By default light modules are drawn, which reads right on dark terminals.
pub fn render_qr(payload: &str, invert: bool) -> anyhow::Result<String> {
    let code = QrCode::new(payload.as_bytes()).context("the QR payload does not fit a QR code")?;
    let mut render = code.render::<Dense1x2>();
    if !invert {
        render
            .dark_color(Dense1x2::Light)
            .light_color(Dense1x2::Dark);
    }
    Ok(render.quiet_zone(true).build())
}

/// Links the session; `Ok` once it is connected (its phone number), `Err` with the reason
/// otherwise. Progress goes to stdout.
pub async fn link(args: LinkArgs) -> anyhow::Result<String> {
    let api = Api {
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .context("cannot build the HTTP client")?,
        base: args.url.trim_end_matches('/').to_owned(),
        token: args.token.clone(),
    };
    let base = format!("/v1/whatsapp-sessions/{}", args.session_id);
    let session = api.ok(Method::GET, &base, None).await?;
    match session["status"].as_str().unwrap_or_default() {
        "connected" => return Ok(phone_of(&session)),
        "disconnected" => {
            println!("connecting session {}…", args.session_id);
            api.ok(Method::POST, &format!("{base}/connect"), None)
                .await?;
        }
        "pending" | "connecting" => {}
        other => bail!(LinkFailed(format!(
            "session {} is {other}: it cannot be linked",
            args.session_id
        ))),
    }
    let deadline = tokio::time::Instant::now() + args.timeout;
    let mut shown: Option<String> = None;
    let mut pair_asked = false;
    let mut last_reason: Option<String> = None;
    loop {
        let session = api.ok(Method::GET, &base, None).await?;
        let reason = session["status_reason"].as_str().map(str::to_owned);
        match session["status"].as_str().unwrap_or_default() {
            "connected" => return Ok(phone_of(&session)),
            "disconnected" => bail!(LinkFailed(format!(
                "the session stopped without a link: {}",
                reason.as_deref().unwrap_or("no reason given")
            ))),
            "pending_deletion" | "deleted" => {
                bail!(LinkFailed("the session is being deleted".into()))
            }
            _ => {}
        }
        let (status, body) = api
            .call(Method::GET, &format!("{base}/qrcode?format=text"), None)
            .await?;
        match status {
            StatusCode::OK => {
                let qr = body["qr"].as_str().unwrap_or_default().to_owned();
                if !qr.is_empty() && shown.as_ref() != Some(&qr) {
                    let fresh = shown.is_none();
                    println!("{}", render_qr(&qr, args.invert)?);
                    println!(
                        "{} Scan it with WhatsApp on the phone: Settings → Linked devices → Link a device.",
                        if fresh {
                            "QR code."
                        } else {
                            "New QR code (the previous one expired)."
                        }
                    );
                    shown = Some(qr);
                }
                if let Some(phone) = args.pair_code.as_deref().filter(|_| !pair_asked) {
                    pair_asked = true;
                    let answer = api
                        .ok(
                            Method::POST,
                            &format!("{base}/pair-code"),
                            Some(json!({ "phone_number": phone })),
                        )
                        .await?;
                    println!(
                        "Pair code: {}  (on the phone: Linked devices → Link a device → Link with phone number instead; valid about 3 minutes)",
                        answer["code"].as_str().unwrap_or_default()
                    );
                }
            }
            // No QR yet (still connecting): say why once, then wait.
            StatusCode::CONFLICT => {
                if reason.is_some() && reason != last_reason {
                    println!(
                        "waiting for a QR code: {}",
                        reason.as_deref().unwrap_or_default()
                    );
                    last_reason = reason;
                }
            }
            _ => bail!(LinkFailed(format!(
                "{base}/qrcode: {}",
                describe(status, &body)
            ))),
        }
        if tokio::time::Instant::now() >= deadline {
            bail!(LinkFailed(format!(
                "no link after {}s; the session keeps running (disconnect it, or run this again)",
                args.timeout.as_secs()
            )));
        }
        tokio::time::sleep(args.poll).await;
    }
}

fn phone_of(session: &Value) -> String {
    session["phone_number"]
        .as_str()
        .unwrap_or("an unknown number")
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qr_codes_are_drawn_with_half_blocks_and_a_quiet_zone() {
        let text = render_qr("2@abc,def,ghi,jkl", false).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let width = lines[0].chars().count();
        assert!(lines.iter().all(|l| l.chars().count() == width));
        // 25 modules + 2 × 4 quiet: 33 wide, 17 lines of two rows each.
        assert!(width >= 29, "{width}");
        assert_eq!(lines.len(), width.div_ceil(2));
        assert!(
            text.chars()
                .all(|c| matches!(c, ' ' | '\u{2580}' | '\u{2584}' | '\u{2588}' | '\n'))
        );
        // Not inverted, the quiet zone (light) is drawn solid.
        assert!(lines[0].chars().all(|c| c == '\u{2588}'), "{}", lines[0]);
        let inverted = render_qr("2@abc,def,ghi,jkl", true).unwrap();
        assert!(inverted.lines().next().unwrap().chars().all(|c| c == ' '));
    }
}
