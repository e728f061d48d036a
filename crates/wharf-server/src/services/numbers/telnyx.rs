//! Telnyx, the one real number provider: its public number search
//! (`GET /v2/available_phone_numbers`), number orders (`POST /v2/number_orders`, read back
//! with `GET /v2/number_orders/{id}`) and release (the number's id from
//! `GET /v2/phone_numbers?filter[phone_number]=…`, then `DELETE /v2/phone_numbers/{id}`).
//! Off unless `telnyx_api_key` is set.

use std::time::Duration;

use async_trait::async_trait;
use reqwest::Method;
use serde_json::{Value, json};
use wharf_core::EngineError;

use super::{NumberProvider, Offer, OrderState, OrderStatus, ProviderSearch, area_code_of};
use crate::ServiceError;

/// Where Telnyx is and how to reach it.
#[derive(Debug, Clone)]
pub struct TelnyxSettings {
    pub api_key: String,
    /// `https://api.telnyx.com` (without `/v2`).
    pub base_url: String,
    /// The country searched and ordered from (ISO 3166-1 alpha-2).
    pub country: String,
    /// Time limit of one call.
    pub timeout: Duration,
}

/// A Telnyx client.
pub struct Telnyx {
    http: reqwest::Client,
    settings: TelnyxSettings,
}

fn transient(what: impl Into<String>) -> ServiceError {
    ServiceError::Engine(EngineError::Transient(what.into()))
}

/// Telnyx's error envelope (`{"errors": [{"code", "title", "detail"}]}`) in a sentence.
fn refusal(status: u16, body: &Value) -> String {
    let words: Vec<String> = body["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            let title = e["title"].as_str().unwrap_or("");
            match e["detail"].as_str() {
                Some(d) if !d.is_empty() && d != title => format!("{title}: {d}"),
                _ => title.to_owned(),
            }
        })
        .filter(|w| !w.is_empty())
        .collect();
    if words.is_empty() {
        format!("Telnyx answered HTTP {status}")
    } else {
        format!("Telnyx refused the request: {}", words.join("; "))
    }
}

impl Telnyx {
    /// A client for `settings`. Needs a rustls crypto provider installed.
    pub fn new(settings: TelnyxSettings) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout.min(Duration::from_secs(10)))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| anyhow::anyhow!("the Telnyx HTTP client: {e}"))?;
        Ok(Self { http, settings })
    }

    /// Calls `path` (after `/v2/`) with `query`; Telnyx's JSON answer, or its refusal (400)
    /// or unavailability (503) as a service error.
    async fn call(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<Value, ServiceError> {
        let mut url = format!("{}/v2/{path}", self.settings.base_url);
        if !query.is_empty() {
            let encoded = serde_urlencoded::to_string(query)
                .map_err(|e| ServiceError::Internal(anyhow::anyhow!("Telnyx query: {e}")))?;
            url = format!("{url}?{encoded}");
        }
        let mut request = self
            .http
            .request(method, &url)
            .bearer_auth(&self.settings.api_key)
            .header("accept", "application/json");
        if let Some(body) = body {
            request = request.json(body);
        }
        let answer = request.send().await.map_err(|e| {
            let what = if e.is_timeout() {
                "timed out"
            } else if e.is_connect() {
                "could not be reached"
            } else {
                "failed"
            };
            transient(format!("Telnyx {what}: {e}"))
        })?;
        let status = answer.status().as_u16();
        let bytes = answer
            .bytes()
            .await
            .map_err(|e| transient(format!("Telnyx's answer could not be read: {e}")))?;
        let json: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        match status {
            200..=299 if json.is_object() => Ok(json),
            200..=299 => Err(ServiceError::BadGateway(
                "Telnyx answered something other than a JSON object".into(),
            )),
            429 | 500.. => Err(transient(refusal(status, &json))),
            _ => Err(ServiceError::Engine(EngineError::Permanent(refusal(
                status, &json,
            )))),
        }
    }
}

fn order_state(answer: &Value) -> Result<OrderState, ServiceError> {
    let data = &answer["data"];
    let id = data["id"]
        .as_str()
        .ok_or_else(|| ServiceError::BadGateway("Telnyx's number order has no id".into()))?;
    Ok(OrderState {
        order_id: id.to_owned(),
        status: match data["status"].as_str() {
            Some("success") => OrderStatus::Success,
            Some("failure" | "cancelled" | "deleted") => OrderStatus::Failure,
            _ => OrderStatus::Pending,
        },
    })
}

#[async_trait]
impl NumberProvider for Telnyx {
    fn name(&self) -> &'static str {
        "telnyx"
    }

    fn country(&self) -> &str {
        &self.settings.country
    }

    async fn search(&self, q: &ProviderSearch) -> Result<Vec<Offer>, ServiceError> {
        let mut query = vec![
            (
                "filter[country_code]",
                q.country
                    .clone()
                    .unwrap_or_else(|| self.settings.country.clone()),
            ),
            ("filter[limit]", q.limit.to_string()),
        ];
        if let Some(p) = &q.area_code {
            query.push(("filter[national_destination_code]", p.clone()));
        }
        if let Some(l) = &q.locality {
            query.push(("filter[locality]", l.clone()));
        }
        if let Some(c) = &q.contains {
            query.push(("filter[phone_number][contains]", c.clone()));
        }
        let answer = self
            .call(Method::GET, "available_phone_numbers", &query, None)
            .await?;
        let data = answer["data"].as_array().ok_or_else(|| {
            ServiceError::BadGateway("Telnyx's number search has no data list".into())
        })?;
        Ok(data
            .iter()
            .filter_map(|n| {
                let phone = n["phone_number"].as_str()?;
                let region = |kind: &str| {
                    n["region_information"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .find(|r| r["region_type"] == kind)
                        .and_then(|r| r["region_name"].as_str())
                        .map(str::to_owned)
                };
                Some(Offer {
                    phone_number: phone.to_owned(),
                    country: region("country_code")
                        .unwrap_or_else(|| self.settings.country.clone()),
                    locality: region("location").or_else(|| region("rate_center")),
                    area_code: area_code_of(phone),
                    source: "telnyx",
                })
            })
            .take(q.limit)
            .collect())
    }

    async fn order(&self, phone_number: &str) -> Result<OrderState, ServiceError> {
        let body = json!({ "phone_numbers": [{ "phone_number": phone_number }] });
        let answer = self
            .call(Method::POST, "number_orders", &[], Some(&body))
            .await?;
        order_state(&answer)
    }

    async fn order_state(&self, order_id: &str) -> Result<OrderState, ServiceError> {
        let answer = self
            .call(Method::GET, &format!("number_orders/{order_id}"), &[], None)
            .await?;
        order_state(&answer)
    }

    async fn release(&self, phone_number: &str) -> Result<(), ServiceError> {
        let digits = phone_number.trim_start_matches('+').to_owned();
        let found = self
            .call(
                Method::GET,
                "phone_numbers",
                &[("filter[phone_number]", digits)],
                None,
            )
            .await?;
        let id = found["data"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|n| n["phone_number"] == phone_number)
            .and_then(|n| n["id"].as_str().map(str::to_owned));
        // Not on the Telnyx account (any more): there is nothing left to release there.
        let Some(id) = id else {
            return Ok(());
        };
        self.call(Method::DELETE, &format!("phone_numbers/{id}"), &[], None)
            .await
            .map(|_| ())
    }
}
