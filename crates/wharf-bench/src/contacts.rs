//! `contacts`: imports N contacts through `POST /v1/whatsapp/contacts/import` (1,000 per
//! call), then measures the contacts list with search, tag and opt-in filters and skip under
//! concurrent clients, and the server's memory.

use std::time::Instant;

use serde_json::{Value, json};

use crate::{
    load::Load,
    server::{Spec, mib},
};

const FIRST: [&str; 20] = [
    "Olivia", "Liam", "Emma", "Noah", "Ava", "Elijah", "Sophia", "Mateo", "Isabella", "Lucas",
    "Mia", "Levi", "Amelia", "Asher", "Harper", "James", "Evelyn", "Leo", "Luna", "Ezra",
];
const LAST: [&str; 20] = [
    "Smith",
    "Johnson",
    "Williams",
    "Brown",
    "Jones",
    "Garcia",
    "Miller",
    "Davis",
    "Rodriguez",
    "Martinez",
    "Hernandez",
    "Lopez",
    "Gonzalez",
    "Wilson",
    "Anderson",
    "Thomas",
    "Taylor",
    "Moore",
    "Jackson",
    "Martin",
];
const TAGS: [&str; 5] = ["vip", "new", "trial", "churned", "enterprise"];

/// Contact number `i`: tags, a group of 20, one in ten opted out.
fn contact(i: usize) -> Value {
    let first = FIRST[i % FIRST.len()];
    let last = LAST[(i / FIRST.len()) % LAST.len()];
    json!({
        "phone": format!("+1650{:07}", i),
        "name": format!("{first} {last} {i}"),
        "email": format!("{}.{}{i}@example{}.com", first.to_lowercase(), last.to_lowercase(), i % 100),
        "company": format!("Company {}", i % 5000),
        "tags": [TAGS[i % TAGS.len()]],
        "groups": [format!("group-{}", i % 20)],
        "isOptedIn": !i.is_multiple_of(10),
    })
}

/// Runs the scenario.
pub async fn run(
    bin: &std::path::Path,
    database_url: Option<&str>,
    contacts: usize,
    concurrency: usize,
    secs: u64,
) -> anyhow::Result<()> {
    let spec = Spec::new(bin, database_url)?.args(&["--rate-limit-per-minute", "1000000000"]);
    let server = spec.start().await?;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()?;
    let pat = server
        .pat
        .clone()
        .ok_or_else(|| anyhow::anyhow!("the server printed no token; is the database empty?"))?;
    let created: Value = client
        .post(server.url("/v1/whatsapp-sessions"))
        .bearer_auth(&pat)
        .json(&json!({"label": "contacts bench"}))
        .send()
        .await?
        .json()
        .await?;
    let account = created["session"]["session_id"]
        .as_str()
        .ok_or_else(|| anyhow::anyhow!("no session id in {created}"))?
        .to_owned();
    println!(
        "scenario: contacts ({contacts} contacts imported 1,000 per call; list with {concurrency} clients, {secs} s per query)"
    );

    // Import: 4 clients post the batches (each built just before it is sent).
    let batches = contacts.div_ceil(1000);
    let url = server.url("/v1/whatsapp/contacts/import");
    let started = Instant::now();
    let mut peak_rss = 0;
    let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..4 {
        let (client, url, pat, next, account) = (
            client.clone(),
            url.clone(),
            pat.clone(),
            next.clone(),
            account.clone(),
        );
        tasks.spawn(async move {
            let mut created = 0u64;
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= batches {
                    return Ok::<u64, anyhow::Error>(created);
                }
                let rows: Vec<Value> = (i * 1000..((i + 1) * 1000).min(contacts))
                    .map(contact)
                    .collect();
                let body = json!({"accountId": account, "contacts": rows});
                let resp = client
                    .post(&url)
                    .bearer_auth(&pat)
                    .json(&body)
                    .send()
                    .await?;
                anyhow::ensure!(resp.status() == 200, "import {i}: {}", resp.status());
                let answer: Value = resp.json().await?;
                created += answer["summary"]["created"].as_u64().unwrap_or(0);
            }
        });
    }
    let mut created = 0;
    loop {
        tokio::select! {
            done = tasks.join_next() => match done {
                Some(r) => created += r??,
                None => break,
            },
            _ = tokio::time::sleep(std::time::Duration::from_millis(500)) => {
                peak_rss = peak_rss.max(server.rss_kib()?);
            }
        }
    }
    let took = started.elapsed();
    peak_rss = peak_rss.max(server.rss_kib()?);
    anyhow::ensure!(
        created as usize == contacts,
        "created {created} of {contacts}"
    );
    println!(
        "  import: {contacts} contacts in {:.1} s = {:.0} contacts/s; peak VmRSS {:.1} MiB",
        took.as_secs_f64(),
        contacts as f64 / took.as_secs_f64(),
        mib(peak_rss)
    );

    let queries = [
        "search=olivia%20smith%2012".to_owned(),
        "search=example7.com&limit=50".to_owned(),
        "tag=vip&skip=5000".to_owned(),
        "tag=trial&optedIn=true&skip=1000".to_owned(),
        "optedIn=false&skip=20000".to_owned(),
        "group=group-3&search=jones".to_owned(),
    ];
    let mut worst_p99 = 0.0f64;
    for q in &queries {
        let path = format!("/v1/whatsapp/contacts?accountId={account}&{q}");
        // The first answer of a search computes it (the store then keeps its matches for
        // the list's generation): timed alone, before the load repeats it.
        let first = Instant::now();
        let resp = client
            .get(server.url(&path))
            .bearer_auth(&pat)
            .send()
            .await?;
        anyhow::ensure!(resp.status() == 200, "{q}: {}", resp.status());
        let total = resp.json::<Value>().await?["pagination"]["total"].clone();
        println!(
            "  first answer of {q}: {:.1} ms ({total} matches)",
            first.elapsed().as_secs_f64() * 1000.0
        );
        let result = Load::get(&client, server.url(&path), Some(pat.clone()))
            .run(concurrency, secs)
            .await?;
        result.print(&format!("GET /v1/whatsapp/contacts?{q}"));
        worst_p99 = worst_p99.max(crate::load::ms(result.percentile(0.99)));
        peak_rss = peak_rss.max(server.rss_kib()?);
    }
    println!(
        "  worst p99 {worst_p99:.2} ms; peak VmRSS {:.1} MiB",
        mib(peak_rss)
    );
    server.stop().await
}
