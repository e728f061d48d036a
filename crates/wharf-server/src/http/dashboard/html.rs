//! HTML building: escaping, the page layout, and small pieces every page uses. Pages are
//! plain `format!` over escaped values: every value that comes from data goes through
//! [`esc`].

use std::fmt::Write as _;

use super::Operator;

/// Escapes text for HTML content and attribute values.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A time (Unix ms) as RFC 3339, in a `<time>` element.
pub fn time(millis: i64) -> String {
    let text = wharf_core::time::rfc3339(millis);
    format!("<time datetime=\"{text}\">{text}</time>")
}

/// An optional time, or a dash.
pub fn time_or_dash(millis: Option<i64>) -> String {
    millis.map_or_else(|| "–".to_owned(), time)
}

/// A status as a badge (its text is the status, so it reads without colour too).
pub fn badge(status: &str) -> String {
    format!(
        "<span class=\"badge badge-{0}\" data-status=\"{0}\">{0}</span>",
        esc(status)
    )
}

/// The hidden CSRF field of a form.
pub fn csrf(operator: &Operator) -> String {
    format!(
        "<input type=\"hidden\" name=\"csrf\" value=\"{}\">",
        esc(&operator.csrf)
    )
}

/// A one-button form posting to `action`.
pub fn button_form(operator: &Operator, action: &str, label: &str, class: &str) -> String {
    format!(
        "<form method=\"post\" action=\"{}\" class=\"inline\">{}<button type=\"submit\" class=\"{class}\">{}</button></form>",
        esc(action),
        csrf(operator),
        esc(label)
    )
}

/// The pages of the navigation: path and label.
const NAV: &[(&str, &str)] = &[
    ("/", "Sessions"),
    ("/dashboard/webhooks", "Webhooks"),
    ("/dashboard/broadcasts", "Broadcasts"),
    ("/dashboard/events", "Events"),
    ("/dashboard/sandbox", "Sandbox"),
];

/// A full page for a logged-in operator. `live` lists the event types that refresh the
/// page's `data-region` parts (empty: none).
pub fn page(operator: &Operator, title: &str, current: &str, live: &[&str], body: &str) -> String {
    let mut nav = String::new();
    for (path, label) in NAV {
        let aria = if *path == current {
            " aria-current=\"page\""
        } else {
            ""
        };
        let _ = write!(nav, "<li><a href=\"{path}\"{aria}>{label}</a></li>");
    }
    let logout = format!(
        "<form method=\"post\" action=\"/dashboard/logout\" class=\"inline\">{}<button type=\"submit\" class=\"link\">Log out</button></form>",
        csrf(operator)
    );
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title} · Wharf</title><link rel=\"stylesheet\" href=\"/dashboard/assets/app.css\">\
         <script src=\"/dashboard/assets/app.js\" defer></script></head>\
         <body data-live=\"{live}\"><a class=\"skip\" href=\"#main\">Skip to content</a>\
         <header><span class=\"brand\">Wharf</span><nav aria-label=\"Main\"><ul>{nav}</ul></nav>{logout}</header>\
         <main id=\"main\" tabindex=\"-1\"><h1>{title}</h1>{body}</main>\
         <p id=\"live-state\" class=\"muted\" aria-live=\"polite\"></p></body></html>",
        title = esc(title),
        live = esc(&live.join(" ")),
    )
}

/// A page without navigation (login, errors).
pub fn bare(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title} · Wharf</title><link rel=\"stylesheet\" href=\"/dashboard/assets/app.css\"></head>\
         <body><header><span class=\"brand\">Wharf</span></header><main id=\"main\">{body}</main></body></html>",
        title = esc(title)
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            super::esc("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }
}
