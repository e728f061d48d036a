//! A fake Telnyx on loopback: the number search (`GET /v2/available_phone_numbers`), number
//! orders (`POST /v2/number_orders`, `GET /v2/number_orders/{id}`) and the account's numbers
//! (`GET /v2/phone_numbers`, `DELETE /v2/phone_numbers/{id}`) and the cancelling of a
//! pending order's sub-orders (`GET /v2/sub_number_orders`,
//! `PATCH /v2/sub_number_orders/{id}/cancel`), in Telnyx's shapes, over an inventory the test
//! fills. Each order has one sub-order, `sub-` and the order's number.

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use axum::{
    Json, Router,
    extract::{Path, RawQuery, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::{delete, get, patch},
};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// The API key the fake accepts.
pub const TELNYX_KEY: &str = "KEYfaketelnyx";

#[derive(Debug, Clone)]
struct Offered {
    phone_number: String,
    country: String,
    locality: String,
}

#[derive(Debug, Clone)]
struct Order {
    id: String,
    phone_number: String,
    status: &'static str,
    customer_reference: String,
}

/// A failure the fake answers once, instead of its usual answer.
#[derive(Debug, Clone, Copy)]
pub struct Injected {
    /// The HTTP status answered.
    pub status: u16,
    /// For an order: whether it is placed all the same (its answer lost on the way).
    pub placed: bool,
}

#[derive(Default)]
struct Inner {
    inventory: Vec<Offered>,
    /// The Telnyx account's numbers: (id, E.164).
    owned: Vec<(String, String)>,
    orders: Vec<Order>,
    orders_pending: bool,
    orders_held: bool,
    next_id: u64,
    requests: Vec<String>,
    fail_order: Option<Injected>,
    fail_release: Option<Injected>,
    fail_cancel: Option<Injected>,
}

type Shared = Arc<Mutex<Inner>>;

/// A running fake Telnyx; stops when dropped.
pub struct FakeTelnyx {
    addr: SocketAddr,
    state: Shared,
    stop: CancellationToken,
}

impl Drop for FakeTelnyx {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

fn error(status: StatusCode, code: &str, title: &str, detail: &str) -> Response {
    (
        status,
        Json(json!({"errors": [{"code": code, "title": title, "detail": detail}]})),
    )
        .into_response()
}

/// The refusal of a request without the fake's key, if it has not.
fn unauthorized(headers: &HeaderMap) -> Option<Response> {
    let ok = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == format!("Bearer {TELNYX_KEY}"));
    (!ok).then(|| {
        error(
            StatusCode::UNAUTHORIZED,
            "10009",
            "Authentication failed",
            "The API key is missing or invalid.",
        )
    })
}

fn pairs(raw: Option<String>) -> Vec<(String, String)> {
    serde_urlencoded::from_str(raw.as_deref().unwrap_or("")).unwrap_or_default()
}

fn param<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

fn record(state: &Shared, line: String) -> std::sync::MutexGuard<'_, Inner> {
    let mut st = state.lock().unwrap_or_else(|e| e.into_inner());
    st.requests.push(line);
    st
}

async fn search(
    State(state): State<Shared>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let st = record(
        &state,
        format!(
            "GET /v2/available_phone_numbers?{}",
            raw.clone().unwrap_or_default()
        ),
    );
    if let Some(r) = unauthorized(&headers) {
        return r;
    }
    let q = pairs(raw);
    let limit: usize = param(&q, "filter[limit]")
        .and_then(|l| l.parse().ok())
        .unwrap_or(100);
    // Telnyx's documented limits: the national destination code filter only applies to
    // North American numbers; `contains` must come with it and searches the last 4 digits.
    let ndc = param(&q, "filter[national_destination_code]");
    if ndc.is_some() && !matches!(param(&q, "filter[country_code]"), Some("US" | "CA")) {
        return error(
            StatusCode::BAD_REQUEST,
            "10015",
            "Invalid filter",
            "national_destination_code only applies to North American numbers",
        );
    }
    if let Some(c) = param(&q, "filter[phone_number][contains]")
        && (ndc.is_none() || c.len() > 4)
    {
        return error(
            StatusCode::BAD_REQUEST,
            "10015",
            "Invalid filter",
            "contains must be used with national_destination_code and searches the last 4 digits",
        );
    }
    let data: Vec<Value> = st
        .inventory
        .iter()
        .filter(|n| !st.owned.iter().any(|(_, p)| *p == n.phone_number))
        .filter(|n| param(&q, "filter[country_code]").is_none_or(|c| c == n.country))
        .filter(|n| {
            param(&q, "filter[national_destination_code]")
                .is_none_or(|a| n.phone_number.get(2..5) == Some(a))
        })
        .filter(|n| {
            param(&q, "filter[locality]").is_none_or(|l| l.eq_ignore_ascii_case(&n.locality))
        })
        .filter(|n| {
            param(&q, "filter[phone_number][contains]").is_none_or(|c| {
                let last4 = &n.phone_number[n.phone_number.len().saturating_sub(4)..];
                last4.contains(c)
            })
        })
        .take(limit)
        .map(|n| {
            json!({
                "record_type": "available_phone_number",
                "phone_number": n.phone_number,
                "vanity_format": "",
                "best_effort": false,
                "quickship": true,
                "reservable": true,
                "region_information": [
                    {"region_type": "country_code", "region_name": n.country},
                    {"region_type": "location", "region_name": n.locality},
                ],
                "cost_information": {"upfront_cost": "1.00", "monthly_cost": "1.00", "currency": "USD"},
                "features": [{"name": "sms"}, {"name": "voice"}],
            })
        })
        .collect();
    let total = data.len();
    Json(json!({"data": data, "meta": {"total_results": total, "best_effort_results": 0}}))
        .into_response()
}

/// The id of an order's one sub-order.
fn sub_id(o: &Order) -> String {
    format!("sub-{}", o.id.trim_start_matches("ord-"))
}

fn order_json(o: &Order, number_id: &str) -> Value {
    json!({"data": {
        "id": o.id,
        "record_type": "number_order",
        "sub_number_orders_ids": [sub_id(o)],
        "customer_reference": o.customer_reference,
        "phone_numbers_count": 1,
        "phone_numbers": [{
            "id": number_id,
            "record_type": "number_order_phone_number",
            "phone_number": o.phone_number,
            "status": o.status,
            "requirements_met": true,
        }],
        "status": o.status,
        "requirements_met": true,
        "created_at": "2026-01-01T00:00:00.000000Z",
        "updated_at": "2026-01-01T00:00:00.000000Z",
    }})
}

async fn create_order(
    State(state): State<Shared>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let mut st = record(&state, format!("POST /v2/number_orders {body}"));
    if let Some(r) = unauthorized(&headers) {
        return r;
    }
    let Some(phone) = body["phone_numbers"][0]["phone_number"].as_str() else {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "10015",
            "Invalid parameter",
            "phone_numbers is required",
        );
    };
    let injected = st.fail_order.take();
    if let Some(Injected {
        placed: false,
        status,
    }) = injected
    {
        return failure(status);
    }
    let offered = st.inventory.iter().any(|n| n.phone_number == phone);
    let taken = st.owned.iter().any(|(_, p)| p == phone)
        || st
            .orders
            .iter()
            .any(|o| o.phone_number == phone && o.status == "pending");
    if !offered || taken {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "85001",
            "Number not available",
            &format!("{phone} is not available for purchase"),
        );
    }
    st.next_id += 1;
    let order = Order {
        id: format!("ord-{}", st.next_id),
        phone_number: phone.to_owned(),
        status: if st.orders_pending {
            "pending"
        } else {
            "success"
        },
        customer_reference: body["customer_reference"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    };
    let number_id = (1_293_384_261_075_731_000 + st.next_id).to_string();
    if order.status == "success" {
        st.owned.push((number_id.clone(), phone.to_owned()));
    }
    st.orders.push(order.clone());
    if let Some(Injected { status, .. }) = injected {
        // Placed, but the answer says otherwise.
        return failure(status);
    }
    Json(order_json(&order, &number_id)).into_response()
}

/// A list answer in Telnyx's shape: everything on one page.
fn list_page(data: Vec<Value>) -> Response {
    let total = data.len();
    Json(json!({"data": data, "meta": {"total_pages": 1, "total_results": total, "page_number": 1, "page_size": 20}}))
        .into_response()
}

fn failure(status: u16) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    error(
        status,
        "10007",
        "Injected failure",
        &format!("the test asked for a {status}"),
    )
}

async fn list_orders(
    State(state): State<Shared>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let st = record(
        &state,
        format!("GET /v2/number_orders?{}", raw.clone().unwrap_or_default()),
    );
    if let Some(r) = unauthorized(&headers) {
        return r;
    }
    let q = pairs(raw);
    let data: Vec<Value> = st
        .orders
        .iter()
        .filter(|o| {
            param(&q, "filter[customer_reference]").is_none_or(|r| r == o.customer_reference)
        })
        .map(|o| order_json(o, "")["data"].clone())
        .collect();
    list_page(data)
}

async fn get_order(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let mut st = record(&state, format!("GET /v2/number_orders/{id}"));
    if let Some(r) = unauthorized(&headers) {
        return r;
    }
    let Some(i) = st.orders.iter().position(|o| o.id == id) else {
        return error(
            StatusCode::NOT_FOUND,
            "10005",
            "Resource not found",
            "no such order",
        );
    };
    // A pending order completes when it is read back (unless orders are held).
    if st.orders[i].status == "pending" && !st.orders_held {
        st.orders[i].status = "success";
        st.next_id += 1;
        let number_id = (1_293_384_261_075_731_000 + st.next_id).to_string();
        let phone = st.orders[i].phone_number.clone();
        st.owned.push((number_id, phone));
    }
    let order = st.orders[i].clone();
    let number_id = st
        .owned
        .iter()
        .find(|(_, p)| *p == order.phone_number)
        .map(|(id, _)| id.clone())
        .unwrap_or_default();
    Json(order_json(&order, &number_id)).into_response()
}

async fn list_numbers(
    State(state): State<Shared>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let st = record(
        &state,
        format!("GET /v2/phone_numbers?{}", raw.clone().unwrap_or_default()),
    );
    if let Some(r) = unauthorized(&headers) {
        return r;
    }
    let q = pairs(raw);
    let filter = param(&q, "filter[phone_number]").unwrap_or("");
    let data: Vec<Value> = st
        .owned
        .iter()
        .filter(|(_, p)| p.contains(filter))
        .map(|(id, p)| json!({"id": id, "record_type": "phone_number", "phone_number": p, "status": "active"}))
        .collect();
    list_page(data)
}

async fn delete_number(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let mut st = record(&state, format!("DELETE /v2/phone_numbers/{id}"));
    if let Some(r) = unauthorized(&headers) {
        return r;
    }
    if let Some(Injected { status, .. }) = st.fail_release.take() {
        return failure(status);
    }
    let Some(i) = st.owned.iter().position(|(n, _)| *n == id) else {
        return error(
            StatusCode::NOT_FOUND,
            "10005",
            "Resource not found",
            "no such phone number",
        );
    };
    let (id, phone) = st.owned.remove(i);
    Json(json!({"data": {"id": id, "record_type": "phone_number", "phone_number": phone, "status": "deleted"}}))
        .into_response()
}

fn sub_order_json(o: &Order) -> Value {
    json!({
        "id": sub_id(o),
        "record_type": "sub_number_order",
        "order_request_id": o.id,
        "country_code": "US",
        "phone_number_type": "local",
        "phone_numbers_count": 1,
        "customer_reference": o.customer_reference,
        "requirements_met": true,
        "status": o.status,
        "is_block_sub_number_order": false,
        "created_at": "2026-01-01T00:00:00.000000Z",
        "updated_at": "2026-01-01T00:00:00.000000Z",
    })
}

async fn list_sub_orders(
    State(state): State<Shared>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let st = record(
        &state,
        format!(
            "GET /v2/sub_number_orders?{}",
            raw.clone().unwrap_or_default()
        ),
    );
    if let Some(r) = unauthorized(&headers) {
        return r;
    }
    let q = pairs(raw);
    let data: Vec<Value> = st
        .orders
        .iter()
        .filter(|o| param(&q, "filter[order_request_id]").is_none_or(|r| r == o.id))
        .filter(|o| param(&q, "filter[status]").is_none_or(|s| s == o.status))
        .map(sub_order_json)
        .collect();
    list_page(data)
}

/// Cancels a pending sub-order: its order fails, and its number is never bought.
async fn cancel_sub_order(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let mut st = record(&state, format!("PATCH /v2/sub_number_orders/{id}/cancel"));
    if let Some(r) = unauthorized(&headers) {
        return r;
    }
    if let Some(Injected { status, .. }) = st.fail_cancel.take() {
        return failure(status);
    }
    let Some(i) = st.orders.iter().position(|o| sub_id(o) == id) else {
        return error(
            StatusCode::NOT_FOUND,
            "10005",
            "Resource not found",
            "no such sub number order",
        );
    };
    if st.orders[i].status != "pending" {
        return error(
            StatusCode::BAD_REQUEST,
            "10015",
            "Bad Request",
            "only a sub number order in 'pending' status can be cancelled",
        );
    }
    st.orders[i].status = "failure";
    Json(json!({"data": sub_order_json(&st.orders[i])})).into_response()
}

impl FakeTelnyx {
    /// Starts the fake on a loopback port.
    pub async fn start() -> Self {
        let state: Shared = Arc::default();
        let app = Router::new()
            .route("/v2/available_phone_numbers", get(search))
            .route(
                "/v2/number_orders",
                axum::routing::post(create_order).get(list_orders),
            )
            .route("/v2/number_orders/{id}", get(get_order))
            .route("/v2/phone_numbers", get(list_numbers))
            .route("/v2/phone_numbers/{id}", delete(delete_number))
            .route("/v2/sub_number_orders", get(list_sub_orders))
            .route("/v2/sub_number_orders/{id}/cancel", patch(cancel_sub_order))
            .with_state(state.clone());
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fake Telnyx");
        let addr = listener.local_addr().expect("its address");
        let stop = CancellationToken::new();
        let until = stop.clone();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(until.cancelled_owned())
                .await;
        });
        Self { addr, state, stop }
    }

    /// `http://127.0.0.1:PORT` (Wharf's `telnyx_base_url`).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Offers `phone_number` (E.164) of `country` in `locality` for sale.
    pub fn offer(&self, phone_number: &str, country: &str, locality: &str) {
        self.lock().inventory.push(Offered {
            phone_number: phone_number.to_owned(),
            country: country.to_owned(),
            locality: locality.to_owned(),
        });
    }

    /// New orders stay `pending` until they are read back (then `success`).
    pub fn set_orders_pending(&self, pending: bool) {
        self.lock().orders_pending = pending;
    }

    /// Pending orders stay pending even when read back.
    pub fn set_orders_held(&self, held: bool) {
        self.lock().orders_held = held;
    }

    /// The next order is answered `status`; it is placed all the same when `placed`.
    pub fn fail_next_order(&self, status: u16, placed: bool) {
        self.lock().fail_order = Some(Injected { status, placed });
    }

    /// The next release (`DELETE /v2/phone_numbers/{id}`) is answered `status`, undone.
    pub fn fail_next_release(&self, status: u16) {
        self.lock().fail_release = Some(Injected {
            status,
            placed: false,
        });
    }

    /// The next cancel (`PATCH /v2/sub_number_orders/{id}/cancel`) is answered `status`,
    /// and nothing is cancelled.
    pub fn fail_next_cancel(&self, status: u16) {
        self.lock().fail_cancel = Some(Injected {
            status,
            placed: false,
        });
    }

    /// The status of the last order of `phone_number` (`pending`, `success`, `failure`).
    pub fn order_status(&self, phone_number: &str) -> Option<String> {
        self.lock()
            .orders
            .iter()
            .rev()
            .find(|o| o.phone_number == phone_number)
            .map(|o| o.status.to_owned())
    }

    /// Takes `phone_number` off the Telnyx account, as if released elsewhere.
    pub fn disown(&self, phone_number: &str) {
        self.lock().owned.retain(|(_, p)| p != phone_number);
    }

    /// The numbers the Telnyx account holds.
    pub fn owned(&self) -> Vec<String> {
        self.lock().owned.iter().map(|(_, p)| p.clone()).collect()
    }

    /// The requests received, as `METHOD path?query` (orders with their body).
    pub fn requests(&self) -> Vec<String> {
        self.lock().requests.clone()
    }
}
