//! Cloud API sessions against the fake Graph server.

use serde_json::{Value, json};
use wharf_fakegraph::{FakeGraph, FakeNumber};

use crate::TestApp;

/// A number registered with a fake Graph server, and the session that uses it.
pub struct CloudNumber {
    pub number: FakeNumber,
    /// The Wharf session (`sess_…`).
    pub session: String,
    /// The session's key.
    pub key: String,
    /// The verify token given at creation.
    pub verify_token: String,
}

impl CloudNumber {
    /// The phone number id.
    pub fn pnid(&self) -> &str {
        &self.number.phone_number_id
    }
}

/// The `cloud` object for `number` (on the app's fake Graph server, which the server is
/// configured with: the Graph address is not a session's setting).
pub fn cloud_body(number: &FakeNumber, verify_token: &str) -> Value {
    json!({
        "phone_number_id": number.phone_number_id,
        "waba_id": number.waba_id,
        "access_token": number.access_token,
        "app_secret": number.app_secret,
        "verify_token": verify_token,
        "graph_version": "v23.0",
    })
}

impl TestApp {
    /// Registers `number` with `graph`, points the fake's webhooks at this server, creates a
    /// cloud session for it (with `extra` merged into its `cloud` object) and connects it.
    pub async fn cloud_session(
        &self,
        graph: &FakeGraph,
        number: FakeNumber,
        extra: Value,
    ) -> CloudNumber {
        assert_eq!(
            graph.base_url(),
            self.config.cloud_graph_base_url,
            "cloud sessions talk to the app's own fake Graph server (TestApp::graph)"
        );
        graph.add_number(number.clone());
        graph.set_webhook_url(&self.url("/webhooks/meta"));
        let verify_token = format!("verify-{}", number.phone_number_id);
        let mut cloud = cloud_body(&number, &verify_token);
        if let Value::Object(extra) = extra {
            for (k, v) in extra {
                cloud[k] = v;
            }
        }
        let created = self
            .create_session(json!({"engine": "cloud", "cloud": cloud}))
            .await;
        let (session, key) = crate::session_and_key(&created);
        let connected = self
            .post(&format!("/v1/whatsapp-sessions/{session}/connect"))
            .expect(200)
            .await;
        assert_eq!(connected["status"], "connected", "{connected}");
        CloudNumber {
            number,
            session,
            key,
            verify_token,
        }
    }
}
