//! The address book WhatsApp syncs to web devices, in the database (`web_contacts`): one
//! entry per person across LID and number, sessions apart, gone with the device.

use wharf_core::{Jid, SessionId, social::EngineContact};
use wharf_engines::web::{ContactBook, book::apply, port::ContactChange};
use wharf_server::web_devices::DatabaseBook;

async fn session(app: &wharf_testkit::TestApp) -> SessionId {
    let created = app.create_session(serde_json::json!({})).await;
    created["session"]["session_id"]
        .as_str()
        .expect("a session id")
        .parse()
        .expect("a session id")
}

fn jid(text: &str) -> Jid {
    Jid::parse(text).unwrap()
}

#[wharf_testkit::dual_test]
async fn synced_contacts_merge_per_person_and_go_with_the_device(app: wharf_testkit::TestApp) {
    let book = DatabaseBook::new(app.store.clone());
    let (one, two) = (session(&app).await, session(&app).await);
    let lid = jid("201234567890123@lid");
    let pn = jid("15550102030@s.whatsapp.net");
    let changes = [
        ContactChange {
            jid: lid.clone(),
            lid: Some(lid.clone()),
            name: None,
            push_name: Some("Amina".into()),
        },
        ContactChange {
            jid: pn.clone(),
            lid: Some(lid.clone()),
            name: Some("Amina Diallo".into()),
            push_name: None,
        },
        ContactChange {
            jid: jid("15550100002@s.whatsapp.net"),
            lid: None,
            name: Some("Bo".into()),
            push_name: None,
        },
    ];
    apply(&book, one, &changes).await.unwrap();
    // A later push name by LID lands on the number's entry.
    apply(
        &book,
        one,
        &[ContactChange {
            jid: lid.clone(),
            lid: Some(lid.clone()),
            name: None,
            push_name: Some("Amina ✨".into()),
        }],
    )
    .await
    .unwrap();
    let got = book.contacts(one).await.unwrap();
    assert_eq!(
        got,
        vec![
            EngineContact {
                jid: jid("15550100002@s.whatsapp.net"),
                lid: None,
                name: Some("Bo".into()),
                push_name: None,
            },
            EngineContact {
                jid: pn,
                lid: Some(lid),
                name: Some("Amina Diallo".into()),
                push_name: Some("Amina ✨".into()),
            },
        ]
    );
    assert!(book.contacts(two).await.unwrap().is_empty());

    // Deleting the device (logout, session deletion) deletes its address book.
    app.store.delete_web_device(one).await.unwrap();
    assert!(book.contacts(one).await.unwrap().is_empty());
    apply(&book, two, &changes[2..]).await.unwrap();
    book.forget(two).await.unwrap();
    assert!(book.contacts(two).await.unwrap().is_empty());
}
