//! Logging: human-readable text (the default) or JSON, one object a line, on stderr.
//!
//! A JSON line holds the event's own fields and, at the top level beside them, the fields of
//! every span it happened in (outermost first, inner ones winning): a request's line carries
//! the `request_id`, `account_id`, `session_id` and `message_id` its span recorded, without
//! nesting a log processor has to dig into.

use std::fmt::{self, Write as _};

use serde_json::{Map, Value};
use tracing::{
    Event, Subscriber,
    field::{Field, Visit},
};
use tracing_subscriber::{
    EnvFilter,
    fmt::{
        FmtContext, FormatEvent, FormatFields, FormattedFields, format::JsonFields, format::Writer,
    },
    registry::LookupSpan,
};
use wharf_server::LogFormat;

/// Installs the process's subscriber: `RUST_LOG` when set, else `filter`, in `format`.
pub fn init(filter: &str, format: LogFormat) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(filter))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .try_init(),
        LogFormat::Json => builder
            .fmt_fields(JsonFields::new())
            .event_format(FlatJson)
            .try_init(),
    };
}

/// The JSON line format: `timestamp`, `level`, `target`, the spans' fields, then the
/// event's (`message` among them).
pub struct FlatJson;

impl<S, N> FormatEvent<S, N> for FlatJson
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        let mut fields = Map::new();
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                let extensions = span.extensions();
                // Span fields are kept as JSON text by `JsonFields`.
                if let Some(recorded) = extensions.get::<FormattedFields<N>>()
                    && let Ok(Value::Object(recorded)) = serde_json::from_str::<Value>(recorded)
                {
                    fields.extend(recorded);
                }
            }
        }
        event.record(&mut Fields(&mut fields));
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        // The three fixed keys first, then the fields (sorted by name).
        let head = [
            ("timestamp", wharf_core::time::rfc3339(now)),
            ("level", meta.level().to_string()),
            ("target", meta.target().to_owned()),
        ];
        let mut line = String::with_capacity(256);
        line.push('{');
        for (i, (key, value)) in head.into_iter().enumerate() {
            fields.remove(key);
            if i > 0 {
                line.push(',');
            }
            let _ = write!(line, "\"{key}\":{}", Value::String(value));
        }
        for (key, value) in &fields {
            let _ = write!(line, ",{}:{value}", Value::String(key.clone()));
        }
        line.push('}');
        writeln!(writer, "{line}")
    }
}

/// Collects an event's fields into a JSON object.
struct Fields<'a>(&'a mut Map<String, Value>);

impl Fields<'_> {
    fn put(&mut self, field: &Field, value: Value) {
        let name = field.name();
        self.0
            .insert(name.strip_prefix("r#").unwrap_or(name).to_owned(), value);
    }
}

impl Visit for Fields<'_> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, serde_json::json!(value));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, value.into());
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, value.into());
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, value.into());
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, value.into());
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.put(field, value.to_string().into());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.put(field, format!("{value:?}").into());
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tracing::field::Empty;
    use tracing_subscriber::fmt::MakeWriter;

    use super::*;

    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Capture {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Capture {
        type Writer = Capture;

        fn make_writer(&'a self) -> Capture {
            self.clone()
        }
    }

    #[test]
    fn json_lines_carry_the_span_fields_at_the_top_level() {
        let capture = Capture::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(capture.clone())
            .fmt_fields(JsonFields::new())
            .event_format(FlatJson)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!(
                "request",
                request_id = "req_1",
                account_id = Empty,
                session_id = Empty,
                message_id = Empty
            );
            let _entered = span.enter();
            span.record("account_id", "acc_1");
            span.record("session_id", tracing::field::display("sess_1"));
            let inner = tracing::info_span!("send", message_id = "msg_1");
            let _inner = inner.enter();
            tracing::warn!(attempt = 2, ok = false, "it \"failed\"");
        });
        let text = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
        let line: Value = serde_json::from_str(text.trim()).expect("one JSON line");
        assert_eq!(line["level"], "WARN");
        assert_eq!(line["message"], "it \"failed\"");
        assert_eq!(line["request_id"], "req_1");
        assert_eq!(line["account_id"], "acc_1");
        assert_eq!(line["session_id"], "sess_1");
        assert_eq!(line["message_id"], "msg_1");
        assert_eq!(line["attempt"], 2);
        assert_eq!(line["ok"], false);
        assert!(line["timestamp"].as_str().unwrap().ends_with('Z'), "{line}");
        assert!(text.starts_with("{\"timestamp\":"), "{text}");
    }
}
