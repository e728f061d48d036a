//! Deep pages of the contacts list. Pages read from where earlier pages ended (the store's
//! page anchors) must be exactly the pages read from the start of the list, whatever order
//! they are asked in, for every filter; and a write must move every page on.

use serde_json::{Value, json};

use super::*;

/// A contact of the test list: its phone, name, tag, group and opt-in.
struct Row {
    phone: String,
    name: String,
    tag: &'static str,
    group: String,
    opted_in: bool,
}

fn rows() -> Vec<Row> {
    // Unique names whose order is not the order of creation; mixed case sorts as lowercase.
    let first = ["Zoe", "adam", "Mia", "bo"];
    (0..240)
        .map(|i| Row {
            phone: format!("+1650555{i:04}"),
            name: format!("{}{:03}", first[i % 4], (i * 37) % 240),
            tag: if i % 3 == 0 { "vip" } else { "std" },
            group: format!("g{}", i % 2),
            opted_in: i % 4 != 0,
        })
        .collect()
}

/// The phones of the list under `query`, in the list's order (name, lowercased).
fn expected(rows: &[Row], query: &str) -> Vec<String> {
    let mut matching: Vec<&Row> = rows
        .iter()
        .filter(|r| {
            query.split('&').filter(|p| !p.is_empty()).all(|p| {
                let (k, v) = p.split_once('=').unwrap();
                match k {
                    "optedIn" => r.opted_in.to_string() == v,
                    "tag" => r.tag == v,
                    "group" => r.group == v,
                    _ => unreachable!("{k}"),
                }
            })
        })
        .collect();
    matching.sort_by_key(|r| r.name.to_lowercase());
    matching.iter().map(|r| r.phone.clone()).collect()
}

async fn page(app: &TestApp, account: &str, query: &str, skip: usize, limit: usize) -> Vec<String> {
    let sep = if query.is_empty() { "" } else { "&" };
    let got = list(
        app,
        account,
        &format!("{query}{sep}skip={skip}&limit={limit}"),
    )
    .await;
    assert_eq!(got.pagination.skip, skip as i64);
    got.contacts.into_iter().map(|c| c.phone).collect()
}

#[wharf_testkit::dual_test]
async fn pages_are_the_same_however_deep_and_in_whatever_order_they_are_read(app: TestApp) {
    let account = account(&app).await;
    let rows = rows();
    let body: Vec<Value> = rows
        .iter()
        .map(|r| {
            json!({"phone": r.phone, "name": r.name, "tags": [r.tag], "groups": [r.group],
                   "isOptedIn": r.opted_in})
        })
        .collect();
    app.post("/v1/whatsapp/contacts/import")
        .json(json!({"accountId": account, "contacts": body}))
        .expect(200)
        .await;

    for query in [
        "",
        "optedIn=false",
        "optedIn=true",
        "tag=vip",
        "tag=std&optedIn=true",
        "tag=std&optedIn=false",
        "group=g1",
        "tag=std&group=g0",
    ] {
        let want = expected(&rows, query);
        assert!(want.len() >= 36, "{query}: {}", want.len());
        // Deep first (nothing to start from), then the same page again (from its anchor),
        // then pages around it, past the end, and from the start in order.
        let deep = want.len() - 13;
        for (skip, limit) in [
            (deep, 7),
            (deep, 7),
            (deep - 5, 9),
            (deep + 3, 4),
            (deep + 20, 5),
        ] {
            let end = (skip + limit).min(want.len());
            assert_eq!(
                page(&app, &account, query, skip, limit).await,
                want[skip.min(end)..end],
                "{query}: skip {skip}, limit {limit}"
            );
        }
        let mut read = Vec::new();
        while read.len() < want.len() {
            let got = page(&app, &account, query, read.len(), 7).await;
            assert!(
                !got.is_empty(),
                "{query}: the list ended early at {}",
                read.len()
            );
            read.extend(got);
        }
        assert_eq!(read, want, "{query}: page by page");
        // Shallower after deeper: from an anchor before it, or from the start.
        for skip in [30, 3, 0, 17] {
            assert_eq!(
                page(&app, &account, query, skip, 6).await,
                want[skip..skip + 6],
                "{query}: skip {skip} again"
            );
        }
    }

    // A write moves the list on: a contact sorting first shifts every page by one.
    let deep = expected(&rows, "").len() - 13;
    let before = page(&app, &account, "", deep, 7).await;
    create(
        &app,
        &account,
        json!({"phone": "+16505559999", "name": "aaa"}),
    )
    .await;
    let after = page(&app, &account, "", deep + 1, 7).await;
    assert_eq!(after, before, "the same contacts, one position on");
    let at = page(&app, &account, "", deep, 7).await;
    assert_eq!(at[1..], before[..6]);
}
