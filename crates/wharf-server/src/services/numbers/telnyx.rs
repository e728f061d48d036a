//! Telnyx, the one real number provider: its public number search
//! (`GET /v2/available_phone_numbers`), number orders (`POST /v2/number_orders`, read back
//! with `GET /v2/number_orders/{id}`; a pending one cancelled through its sub-orders,
//! `GET /v2/sub_number_orders?filter[order_request_id]=…` then
//! `PATCH /v2/sub_number_orders/{id}/cancel`) and release (the number's id from
//! `GET /v2/phone_numbers?filter[phone_number]=…`, then `DELETE /v2/phone_numbers/{id}`).
//! Each order carries the record's id as its `customer_reference`, so an order whose answer
//! was lost is found again (`GET /v2/number_orders?filter[customer_reference]=…`).
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

    /// Calls `path` (after `/v2/`) with `query`; Telnyx's JSON answer, or its refusal (400),
    /// unavailability (503) or the operator's rejected key (503) as a service error.
    async fn call(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<Value, ServiceError> {
        let (status, json) = self.send(method, path, query, body).await?;
        answer(status, json)
    }

    /// Calls `path`; Telnyx's HTTP status and JSON answer (`null` when it is not JSON).
    async fn send(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<(u16, Value), ServiceError> {
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
        Ok((
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        ))
    }
}

/// Telnyx's answer, or what its status means.
fn answer(status: u16, json: Value) -> Result<Value, ServiceError> {
    match status {
        200..=299 if json.is_object() => Ok(json),
        200..=299 => Err(ServiceError::BadGateway(
            "Telnyx answered something other than a JSON object".into(),
        )),
        // The operator's key: nothing the caller can change.
        401 | 403 => Err(ServiceError::Unavailable {
            reason_code: "platform_unavailable",
            message: format!(
                "the server's Telnyx credentials were rejected (telnyx_api_key): {}",
                refusal(status, &json)
            ),
        }),
        408 | 429 | 500.. => Err(transient(refusal(status, &json))),
        _ => Err(ServiceError::Engine(EngineError::Permanent(refusal(
            status, &json,
        )))),
    }
}

/// Whether Telnyx's `national_destination_code` filter applies: a three-digit North
/// American area code (the filter is only applicable to North American numbers).
fn ndc_applies(country: &str, area_code: &str) -> bool {
    matches!(country, "US" | "CA") && area_code.len() == 3
}

/// Whether Telnyx's `phone_number[contains]` filter applies: it must come with the
/// `national_destination_code` filter and only searches within the last 4 digits.
fn contains_applies(ndc: bool, contains: &str) -> bool {
    ndc && contains.len() <= 4
}

/// Whether `phone` (E.164) has `prefix` right after its country calling code (of 1 to 3
/// digits, which the number alone does not tell: any of the three is accepted).
fn has_prefix(phone: &str, prefix: &str) -> bool {
    let digits = phone.trim_start_matches('+');
    (1..=3).any(|cc| digits.get(cc..).is_some_and(|n| n.starts_with(prefix)))
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
        let country = q
            .country
            .clone()
            .unwrap_or_else(|| self.settings.country.clone());
        // Filters Telnyx does not apply are applied here, on a larger page.
        let ndc = q.area_code.as_deref().filter(|a| ndc_applies(&country, a));
        let contains = q
            .contains
            .as_deref()
            .filter(|c| contains_applies(ndc.is_some(), c));
        let local_prefix = q.area_code.as_deref().filter(|_| ndc.is_none());
        let local_contains = q.contains.as_deref().filter(|_| contains.is_none());
        let page = if local_prefix.is_some() || local_contains.is_some() {
            100
        } else {
            q.limit
        };
        let mut query = vec![
            ("filter[country_code]", country),
            ("filter[limit]", page.to_string()),
        ];
        if let Some(p) = ndc {
            query.push(("filter[national_destination_code]", p.to_owned()));
        }
        if let Some(l) = &q.locality {
            query.push(("filter[locality]", l.clone()));
        }
        if let Some(c) = contains {
            query.push(("filter[phone_number][contains]", c.to_owned()));
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
                if local_prefix.is_some_and(|p| !has_prefix(phone, p))
                    || local_contains.is_some_and(|c| !phone.contains(c))
                {
                    return None;
                }
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

    async fn order(&self, phone_number: &str, reference: &str) -> Result<OrderState, ServiceError> {
        let body = json!({
            "phone_numbers": [{ "phone_number": phone_number }],
            "customer_reference": reference,
        });
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

    async fn find_order(&self, reference: &str) -> Result<Option<OrderState>, ServiceError> {
        let answer = self
            .call(
                Method::GET,
                "number_orders",
                &[("filter[customer_reference]", reference.to_owned())],
                None,
            )
            .await?;
        let found = answer["data"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|o| o["customer_reference"] == reference);
        found
            .map(|o| order_state(&json!({ "data": o })))
            .transpose()
    }

    async fn cancel_order(&self, order_id: &str) -> Result<OrderState, ServiceError> {
        let subs = self
            .call(
                Method::GET,
                "sub_number_orders",
                &[("filter[order_request_id]", order_id.to_owned())],
                None,
            )
            .await?;
        let pending = subs["data"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|s| s["order_request_id"] == order_id && s["status"] == "pending")
            .filter_map(|s| s["id"].as_str());
        for sub in pending {
            match self
                .send(
                    Method::PATCH,
                    &format!("sub_number_orders/{sub}/cancel"),
                    &[],
                    None,
                )
                .await?
            {
                (200..=299, _) => {}
                // Not (or no longer) cancellable: the order, read next, tells where it stands.
                (400 | 404 | 409 | 422, json) => {
                    tracing::info!(order = %order_id, sub_order = %sub, answer = %refusal(400, &json), "Telnyx did not cancel a sub-order");
                }
                (status, json) => {
                    answer(status, json)?;
                }
            }
        }
        self.order_state(order_id).await
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
        match self
            .send(Method::DELETE, &format!("phone_numbers/{id}"), &[], None)
            .await?
        {
            // Gone already (a release retried after Telnyx took it back).
            (404, _) => Ok(()),
            (status, json) => answer(status, json).map(|_| ()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_are_passed_on_only_where_telnyx_applies_them() {
        assert!(ndc_applies("US", "212"));
        assert!(!ndc_applies("US", "2125"));
        assert!(!ndc_applies("GB", "207"));
        assert!(contains_applies(true, "0101"));
        assert!(!contains_applies(true, "55501"));
        assert!(!contains_applies(false, "01"));
        assert!(has_prefix("+442079460958", "207"));
        assert!(has_prefix("+12125550100", "212"));
        assert!(!has_prefix("+12125550100", "555"));
    }
}
