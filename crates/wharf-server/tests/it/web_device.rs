//! The WhatsApp Web engine's device store (`wharf_store::WebDeviceStore`): whatsapp-rust's
//! storage traits on Wharf's database. Every method round-trips, two sessions' devices stay
//! apart, a device survives a reopened store, its secrets are sealed at rest, the client's
//! durability probe passes, and deleting a session removes its device.

use std::sync::Arc;

use wharf_core::SessionId;
use wharf_server::secrets::SecretBox;
use wharf_store::{Store, WebDeviceStore};
use whatsapp_rust::{
    bytes::Bytes,
    store::persistence_manager::PersistenceManager,
    wacore::{
        appstate::{hash::HashState, processor::AppStateMutationMAC},
        store::{
            Device,
            traits::{
                AppStateSyncKey, AppSyncStore, DeviceInfo, DeviceListRecord, DeviceStore,
                LidPnMappingEntry, MsgSecretEntry, MsgSecretStore, PendingInboundKey,
                PendingInboundRow, ProtocolStore, SignalStore, TcTokenEntry,
            },
        },
    },
};

fn sealer(key: u8) -> Arc<SecretBox> {
    Arc::new(SecretBox::new(&[key; 32], "test".into()))
}

async fn session(app: &wharf_testkit::TestApp) -> SessionId {
    let created = app.create_session(serde_json::json!({})).await;
    created["session"]["session_id"]
        .as_str()
        .expect("a session id")
        .parse()
        .expect("a session id")
}

fn device_store(store: &Store, session: SessionId) -> WebDeviceStore {
    WebDeviceStore::new(store.clone(), session, sealer(7))
}

fn json(device: &Device) -> serde_json::Value {
    serde_json::to_value(device).expect("a device serializes")
}

#[wharf_testkit::dual_test]
async fn every_method_of_the_web_device_store_round_trips(app: wharf_testkit::TestApp) {
    let s = device_store(&app.store, session(&app).await);

    // Identities.
    assert_eq!(s.load_identity("111@s.whatsapp.net").await.unwrap(), None);
    s.put_identity("111@s.whatsapp.net", [1; 32]).await.unwrap();
    s.put_identity("111@s.whatsapp.net", [2; 32]).await.unwrap();
    assert_eq!(
        s.load_identity("111@s.whatsapp.net").await.unwrap(),
        Some([2; 32])
    );
    s.put_identities_batch(&[
        ("222:3@s.whatsapp.net".into(), [3; 32]),
        ("333@lid".into(), [4; 32]),
        ("333@lid".into(), [5; 32]),
    ])
    .await
    .unwrap();
    assert_eq!(s.load_identity("333@lid").await.unwrap(), Some([5; 32]));
    assert_eq!(
        s.load_identity("222:3@s.whatsapp.net").await.unwrap(),
        Some([3; 32])
    );
    s.delete_identity("111@s.whatsapp.net").await.unwrap();
    s.delete_identity("111@s.whatsapp.net").await.unwrap();
    assert_eq!(s.load_identity("111@s.whatsapp.net").await.unwrap(), None);

    // Signal sessions, and whose state exists.
    assert!(s.get_session("444@s.whatsapp.net").await.unwrap().is_none());
    assert!(!s.has_session("444@s.whatsapp.net").await.unwrap());
    s.put_session("444@s.whatsapp.net", b"one").await.unwrap();
    s.put_session("444@s.whatsapp.net", b"two").await.unwrap();
    assert_eq!(
        s.get_session("444@s.whatsapp.net")
            .await
            .unwrap()
            .as_deref(),
        Some(&b"two"[..])
    );
    assert!(s.has_session("444@s.whatsapp.net").await.unwrap());
    let batch: Vec<(Arc<str>, Bytes)> = (0..450)
        .map(|i| {
            (
                Arc::from(format!("555:{i}@s.whatsapp.net")),
                Bytes::from(format!("record {i}")),
            )
        })
        .chain([(Arc::from("555:7@s.whatsapp.net"), Bytes::from("last wins"))])
        .collect();
    s.put_sessions_batch(&batch).await.unwrap();
    assert_eq!(
        s.get_session("555:449@s.whatsapp.net")
            .await
            .unwrap()
            .as_deref(),
        Some(&b"record 449"[..])
    );
    assert_eq!(
        s.get_session("555:7@s.whatsapp.net")
            .await
            .unwrap()
            .as_deref(),
        Some(&b"last wins"[..])
    );
    assert!(s.has_signal_state_for_user("444").await.unwrap());
    assert!(s.has_signal_state_for_user("555").await.unwrap());
    assert!(
        s.has_signal_state_for_user("222").await.unwrap(),
        "identity"
    );
    assert!(
        !s.has_signal_state_for_user("44").await.unwrap(),
        "a prefix"
    );
    assert!(!s.has_signal_state_for_user("4444").await.unwrap());
    s.delete_session("444@s.whatsapp.net").await.unwrap();
    assert!(!s.has_session("444@s.whatsapp.net").await.unwrap());
    assert!(!s.has_signal_state_for_user("444").await.unwrap());

    // One-time pre-keys.
    assert_eq!(s.get_max_prekey_id().await.unwrap(), 0);
    assert!(s.load_prekey(1).await.unwrap().is_none());
    s.store_prekey(1, b"pk1", false).await.unwrap();
    s.store_prekey(1, b"pk1b", true).await.unwrap();
    assert_eq!(
        s.load_prekey(1).await.unwrap().as_deref(),
        Some(&b"pk1b"[..])
    );
    let keys: Vec<(u32, Bytes)> = (2..=813)
        .map(|i| (i, Bytes::from(format!("pk{i}"))))
        .collect();
    s.store_prekeys_batch(&keys, false).await.unwrap();
    assert_eq!(s.get_max_prekey_id().await.unwrap(), 813);
    let mut loaded = s.load_prekeys_batch(&[5, 813, 9999]).await.unwrap();
    loaded.sort_by_key(|(id, _)| *id);
    assert_eq!(
        loaded,
        vec![(5, Bytes::from("pk5")), (813, Bytes::from("pk813"))]
    );
    assert!(s.load_prekeys_batch(&[]).await.unwrap().is_empty());
    s.remove_prekey(813).await.unwrap();
    s.mark_prekeys_uploaded(&[5, 813]).await.unwrap();
    assert!(
        s.load_prekey(813).await.unwrap().is_none(),
        "marking never brings a removed key back"
    );
    assert_eq!(s.get_max_prekey_id().await.unwrap(), 812);
    let uploaded: Vec<(i64, i64)> = sqlx_rows(
        &app,
        "SELECT id, uploaded FROM web_prekeys WHERE id IN (1, 5, 6) ORDER BY id",
    )
    .await;
    assert_eq!(uploaded, vec![(1, 1), (5, 1), (6, 0)]);

    // Signed pre-keys.
    assert!(s.load_signed_prekey(1).await.unwrap().is_none());
    assert!(s.load_all_signed_prekeys().await.unwrap().is_empty());
    s.store_signed_prekey(1, b"spk1").await.unwrap();
    s.store_signed_prekey(2, b"spk2").await.unwrap();
    s.store_signed_prekey(2, b"spk2b").await.unwrap();
    assert_eq!(
        s.load_signed_prekey(2).await.unwrap(),
        Some(b"spk2b".to_vec())
    );
    assert_eq!(
        s.load_all_signed_prekeys().await.unwrap(),
        vec![(1, b"spk1".to_vec()), (2, b"spk2b".to_vec())]
    );
    s.remove_signed_prekey(1).await.unwrap();
    assert_eq!(s.load_all_signed_prekeys().await.unwrap().len(), 1);

    // Sender keys.
    let name = "120363@g.us::666@s.whatsapp.net::0";
    assert!(s.get_sender_key(name).await.unwrap().is_none());
    s.put_sender_key(name, b"sk").await.unwrap();
    s.put_sender_keys_batch(&[
        (Arc::from(name), Bytes::from("sk2")),
        (Arc::from("other"), Bytes::from("sk3")),
    ])
    .await
    .unwrap();
    assert_eq!(s.get_sender_key(name).await.unwrap(), Some(b"sk2".to_vec()));
    s.delete_sender_key(name).await.unwrap();
    assert!(s.get_sender_key(name).await.unwrap().is_none());
    assert_eq!(
        s.get_sender_key("other").await.unwrap(),
        Some(b"sk3".to_vec())
    );

    // App-state sync keys: the latest is the one set last.
    assert!(s.get_sync_key(b"k1").await.unwrap().is_none());
    assert!(s.get_latest_sync_key_id().await.unwrap().is_none());
    let key = |n: u8| AppStateSyncKey {
        key_data: vec![n; 32],
        fingerprint: vec![n, n],
        timestamp: i64::from(n) * 1000,
    };
    s.set_sync_key(b"k2", key(2)).await.unwrap();
    s.set_sync_key(b"k1", key(1)).await.unwrap();
    assert_eq!(
        s.get_latest_sync_key_id().await.unwrap(),
        Some(b"k1".to_vec())
    );
    s.set_sync_key(b"k2", key(3)).await.unwrap();
    assert_eq!(
        s.get_latest_sync_key_id().await.unwrap(),
        Some(b"k2".to_vec())
    );
    let got = s.get_sync_key(b"k2").await.unwrap().expect("k2");
    assert_eq!(
        (got.key_data, got.fingerprint, got.timestamp),
        (vec![3; 32], vec![3, 3], 3000)
    );

    // App-state versions: the default when missing.
    let missing = s.get_version("regular").await.unwrap();
    assert_eq!(missing.version, 0);
    let mut state = HashState {
        version: 42,
        hash: [9; 128],
        ..Default::default()
    };
    state.index_value_map.insert("idx".into(), vec![1, 2, 3]);
    s.set_version("regular", state.clone()).await.unwrap();
    state.version = 43;
    s.set_version("regular", state).await.unwrap();
    let got = s.get_version("regular").await.unwrap();
    assert_eq!(got.version, 43);
    assert_eq!(got.hash, [9; 128]);
    assert_eq!(got.index_value_map.get("idx"), Some(&vec![1, 2, 3]));
    assert_eq!(s.get_version("regular_low").await.unwrap().version, 0);

    // Mutation MACs.
    let mac = |i: u8, v: u8| AppStateMutationMAC {
        index_mac: vec![i; 32],
        value_mac: vec![v; 32],
    };
    assert!(
        s.get_mutation_mac("regular", &[1; 32])
            .await
            .unwrap()
            .is_none()
    );
    s.put_mutation_macs("regular", 1, &[mac(1, 10), mac(2, 20), mac(1, 11)])
        .await
        .unwrap();
    s.put_mutation_macs("regular_high", 1, &[mac(1, 99)])
        .await
        .unwrap();
    assert_eq!(
        s.get_mutation_mac("regular", &[1; 32]).await.unwrap(),
        Some(vec![11; 32])
    );
    let many = s
        .get_mutation_macs("regular", &[[1; 32], [2; 32], [3; 32]])
        .await
        .unwrap();
    assert_eq!(many.len(), 2);
    assert_eq!(many[&[2u8; 32]], vec![20u8; 32]);
    s.delete_mutation_macs("regular", &[vec![1; 32]])
        .await
        .unwrap();
    assert!(
        s.get_mutation_mac("regular", &[1; 32])
            .await
            .unwrap()
            .is_none()
    );
    s.clear_mutation_macs("regular").await.unwrap();
    assert!(
        s.get_mutation_mac("regular", &[2; 32])
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        s.get_mutation_mac("regular_high", &[1; 32]).await.unwrap(),
        Some(vec![99; 32]),
        "other collections keep theirs"
    );

    // Sender-key device status.
    let group = "120363@g.us";
    assert!(s.get_sender_key_devices(group).await.unwrap().is_empty());
    s.set_sender_key_status(group, &[("a:1@s.whatsapp.net", true), ("b@lid", false)])
        .await
        .unwrap();
    s.set_sender_key_status(group, &[("b@lid", true)])
        .await
        .unwrap();
    s.set_sender_key_status("999@g.us", &[("a:1@s.whatsapp.net", true), ("c@lid", true)])
        .await
        .unwrap();
    assert_eq!(
        s.get_sender_key_devices(group).await.unwrap(),
        vec![
            ("a:1@s.whatsapp.net".to_owned(), true),
            ("b@lid".to_owned(), true)
        ]
    );
    s.delete_sender_key_device_rows(&["a:1@s.whatsapp.net"])
        .await
        .unwrap();
    assert_eq!(
        s.get_sender_key_devices(group).await.unwrap(),
        vec![("b@lid".to_owned(), true)]
    );
    assert_eq!(
        s.get_sender_key_devices("999@g.us").await.unwrap(),
        vec![("c@lid".to_owned(), true)],
        "across every group"
    );
    s.clear_sender_key_devices(group).await.unwrap();
    assert!(s.get_sender_key_devices(group).await.unwrap().is_empty());
    s.clear_all_sender_key_devices().await.unwrap();
    assert!(
        s.get_sender_key_devices("999@g.us")
            .await
            .unwrap()
            .is_empty()
    );

    // LID and phone number mappings.
    let lid = |lid: &str, pn: &str, at: i64| LidPnMappingEntry {
        lid: lid.into(),
        phone_number: pn.into(),
        created_at: at,
        updated_at: at,
        learning_source: "usync".into(),
    };
    assert!(s.get_lid_mapping("100").await.unwrap().is_none());
    assert!(s.get_pn_mapping("155").await.unwrap().is_none());
    s.put_lid_mapping(&lid("100", "155", 10)).await.unwrap();
    s.put_lid_mappings(&[lid("200", "155", 20), lid("300", "166", 5)])
        .await
        .unwrap();
    assert_eq!(s.get_pn_mapping("155").await.unwrap().unwrap().lid, "200");
    let mut moved = lid("100", "177", 30);
    moved.learning_source = "peer_pn_message".into();
    s.put_lid_mapping(&moved).await.unwrap();
    let got = s.get_lid_mapping("100").await.unwrap().unwrap();
    assert_eq!(
        (
            got.phone_number.as_str(),
            got.created_at,
            got.updated_at,
            got.learning_source.as_str()
        ),
        ("177", 10, 30, "peer_pn_message"),
        "the first created_at is kept"
    );
    assert_eq!(s.get_pn_mapping("177").await.unwrap().unwrap().lid, "100");
    let all: Vec<String> = s
        .get_all_lid_mappings()
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.lid)
        .collect();
    assert_eq!(all, vec!["100", "200", "300"]);

    // Base keys.
    assert!(!s.has_same_base_key("a", "m1", b"bk").await.unwrap());
    s.save_base_key("a", "m1", b"bk").await.unwrap();
    assert!(s.has_same_base_key("a", "m1", b"bk").await.unwrap());
    assert!(!s.has_same_base_key("a", "m1", b"other").await.unwrap());
    assert!(!s.has_same_base_key("a", "m2", b"bk").await.unwrap());
    s.delete_base_key("a", "m1").await.unwrap();
    assert!(!s.has_same_base_key("a", "m1", b"bk").await.unwrap());

    // Device lists.
    let record = |user: &str, ts: i64| DeviceListRecord {
        user: user.into(),
        devices: vec![
            DeviceInfo {
                device_id: 0,
                key_index: None,
                is_hosted: false,
            },
            DeviceInfo {
                device_id: 3,
                key_index: Some(7),
                is_hosted: true,
            },
        ],
        timestamp: ts,
        phash: Some("2:abc".into()),
        raw_id: Some(11),
    };
    assert!(s.get_devices("777").await.unwrap().is_none());
    s.update_device_list(record("777", 1)).await.unwrap();
    s.update_device_lists(vec![record("777", 2), record("888", 3)])
        .await
        .unwrap();
    let got = s.get_devices("777").await.unwrap().unwrap();
    assert_eq!(
        (
            got.timestamp,
            got.devices.len(),
            got.devices[1].key_index,
            got.raw_id
        ),
        (2, 2, Some(7), Some(11))
    );
    assert!(got.devices[1].is_hosted);
    s.delete_devices("777").await.unwrap();
    assert!(s.get_devices("777").await.unwrap().is_none());
    assert!(s.get_devices("888").await.unwrap().is_some());

    // Group metadata.
    assert!(s.get_group_metadata(group).await.unwrap().is_none());
    s.put_group_metadata(group, b"meta").await.unwrap();
    s.put_group_metadata(group, b"meta2").await.unwrap();
    assert_eq!(
        s.get_group_metadata(group).await.unwrap(),
        Some(b"meta2".to_vec())
    );
    s.delete_group_metadata(group).await.unwrap();
    assert!(s.get_group_metadata(group).await.unwrap().is_none());

    // Trusted-contact tokens.
    assert!(s.get_tc_token("1@lid").await.unwrap().is_none());
    s.put_tc_token(
        "1@lid",
        &TcTokenEntry {
            token: b"t1".to_vec(),
            token_timestamp: 100,
            sender_timestamp: None,
        },
    )
    .await
    .unwrap();
    s.touch_tc_token_sender_timestamp("1@lid", 50)
        .await
        .unwrap();
    s.touch_tc_token_sender_timestamp("1@lid", 40)
        .await
        .unwrap();
    let got = s.get_tc_token("1@lid").await.unwrap().unwrap();
    assert_eq!(
        (got.token, got.token_timestamp, got.sender_timestamp),
        (b"t1".to_vec(), 100, Some(50)),
        "the sender time only moves forward; the token stays"
    );
    s.store_received_tc_token("1@lid", b"old", 90)
        .await
        .unwrap();
    assert_eq!(
        s.get_tc_token("1@lid").await.unwrap().unwrap().token,
        b"t1".to_vec(),
        "an older token does not replace a newer one"
    );
    s.store_received_tc_token("1@lid", b"t2", 100)
        .await
        .unwrap();
    let got = s.get_tc_token("1@lid").await.unwrap().unwrap();
    assert_eq!(
        (got.token, got.sender_timestamp),
        (b"t2".to_vec(), Some(50))
    );
    // A placeholder (from the sender side) never blocks the first real token.
    s.touch_tc_token_sender_timestamp("2@lid", 500)
        .await
        .unwrap();
    let got = s.get_tc_token("2@lid").await.unwrap().unwrap();
    assert_eq!(
        (got.token.len(), got.token_timestamp, got.sender_timestamp),
        (0, 500, Some(500))
    );
    s.store_received_tc_token("2@lid", b"real", 1)
        .await
        .unwrap();
    let got = s.get_tc_token("2@lid").await.unwrap().unwrap();
    assert_eq!(
        (got.token, got.token_timestamp, got.sender_timestamp),
        (b"real".to_vec(), 1, Some(500))
    );
    s.store_received_tc_token("3@lid", b"t3", 10).await.unwrap();
    assert_eq!(
        s.get_all_tc_token_jids().await.unwrap(),
        vec!["1@lid", "2@lid", "3@lid"]
    );
    // 1: token 100 (fresh), 2: token stale but sender fresh, 3: both stale (no sender).
    assert_eq!(s.delete_expired_tc_tokens(50, 400).await.unwrap(), 1);
    assert_eq!(
        s.get_all_tc_token_jids().await.unwrap(),
        vec!["1@lid", "2@lid"]
    );
    s.delete_tc_token("1@lid").await.unwrap();
    assert!(s.get_tc_token("1@lid").await.unwrap().is_none());

    // Sent messages: an atomic take.
    assert!(s.take_sent_message("c", "m").await.unwrap().is_none());
    s.store_sent_message("c", "m", b"payload").await.unwrap();
    s.store_sent_message("c", "m", b"payload2").await.unwrap();
    assert_eq!(
        s.take_sent_message("c", "m").await.unwrap(),
        Some(b"payload2".to_vec())
    );
    assert!(s.take_sent_message("c", "m").await.unwrap().is_none());
    s.store_sent_message("c", "old", b"x").await.unwrap();
    let now = wharf_core::time::now_millis() / 1000;
    assert_eq!(s.delete_expired_sent_messages(now - 60).await.unwrap(), 0);
    assert_eq!(s.delete_expired_sent_messages(now + 60).await.unwrap(), 1);

    // The pending-inbound buffer of the durability hook.
    assert!(
        s.get_pending_inbound("c", "s", "i")
            .await
            .unwrap()
            .is_none()
    );
    s.store_pending_inbound("c", "s", "i", b"msg")
        .await
        .unwrap();
    s.store_pending_inbound("c", "s", "i", b"msg2")
        .await
        .unwrap();
    assert_eq!(
        s.get_pending_inbound("c", "s", "i").await.unwrap(),
        Some(b"msg2".to_vec())
    );
    assert!(
        s.get_pending_inbound("c", "s2", "i")
            .await
            .unwrap()
            .is_none()
    );
    s.delete_pending_inbound("c", "s", "i").await.unwrap();
    s.delete_pending_inbound("c", "s", "i").await.unwrap();
    assert!(
        s.get_pending_inbound("c", "s", "i")
            .await
            .unwrap()
            .is_none()
    );
    let rows: Vec<PendingInboundRow<'_>> = ["a", "b", "c"]
        .iter()
        .map(|id| PendingInboundRow {
            chat: "g@g.us",
            sender: "p@lid",
            id,
            message: id.as_bytes(),
        })
        .collect();
    s.store_pending_inbound_batch(&rows).await.unwrap();
    assert_eq!(
        s.get_pending_inbound("g@g.us", "p@lid", "b").await.unwrap(),
        Some(b"b".to_vec())
    );
    s.delete_pending_inbound_batch(&[
        PendingInboundKey {
            chat: "g@g.us",
            sender: "p@lid",
            id: "a",
        },
        PendingInboundKey {
            chat: "g@g.us",
            sender: "p@lid",
            id: "b",
        },
    ])
    .await
    .unwrap();
    assert!(
        s.get_pending_inbound("g@g.us", "p@lid", "a")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        s.get_pending_inbound("g@g.us", "p@lid", "c")
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(s.delete_expired_pending_inbound(now - 60).await.unwrap(), 0);
    assert_eq!(s.delete_expired_pending_inbound(now + 60).await.unwrap(), 1);

    // Message secrets, with the trait's merge rules.
    assert!(s.get_msg_secret("c", "s", "m").await.unwrap().is_none());
    s.put_msg_secret("c", "s", "m", &[1; 32]).await.unwrap();
    assert_eq!(
        s.get_msg_secret_with_ts("c", "s", "m").await.unwrap(),
        Some((vec![1; 32], 0))
    );
    let entry = |id: &str, secret: u8, expires_at: i64, message_ts: i64| MsgSecretEntry {
        chat: "c".into(),
        sender: "s".into(),
        msg_id: id.into(),
        secret: [secret; 32],
        expires_at,
        message_ts,
    };
    assert_eq!(
        s.put_msg_secrets(vec![
            entry("m", 2, 500, 100),
            entry("n", 3, 500, 100),
            entry("n", 4, 400, 0),
            entry("o", 5, 300, 7),
        ])
        .await
        .unwrap(),
        4
    );
    assert_eq!(
        s.get_msg_secret_with_ts("c", "s", "m").await.unwrap(),
        Some((vec![2; 32], 100)),
        "the secret is replaced; `never` expiry stays"
    );
    assert_eq!(
        s.get_msg_secret_with_ts("c", "s", "n").await.unwrap(),
        Some((vec![4; 32], 100)),
        "a later write keeps the later deadline and the known time"
    );
    assert_eq!(s.delete_expired_msg_secrets(299).await.unwrap(), 0);
    assert_eq!(s.delete_expired_msg_secrets(500).await.unwrap(), 2);
    assert_eq!(
        s.get_msg_secret("c", "s", "m").await.unwrap(),
        Some(vec![2; 32]),
        "never expires"
    );
    assert!(s.get_msg_secret("c", "s", "n").await.unwrap().is_none());

    // The device.
    assert!(!s.exists().await.unwrap());
    assert!(s.load().await.unwrap().is_none());
    assert_eq!(s.create().await.unwrap(), 1);
    assert!(s.exists().await.unwrap());
    let created = s.load().await.unwrap().expect("create stores a device");
    assert_eq!(s.create().await.unwrap(), 1);
    assert_eq!(
        json(&s.load().await.unwrap().unwrap()),
        json(&created),
        "create keeps an existing device"
    );
    let mut device = created.clone();
    device.push_name = "Wharf".into();
    device.pn = Some("15550001111@s.whatsapp.net".parse().unwrap());
    s.save(&device).await.unwrap();
    assert_eq!(json(&s.load().await.unwrap().unwrap()), json(&device));
    assert_eq!(s.resource_report().await.memory_bytes, Some(0));
}

/// `(i64, i64)` rows of a query on the test database (through the store's own pools).
async fn sqlx_rows(app: &wharf_testkit::TestApp, sql: &'static str) -> Vec<(i64, i64)> {
    use sqlx::{Connection, Row};
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(app.db().url()).await.unwrap();
    let rows = sqlx::query(sql).fetch_all(&mut conn).await.unwrap();
    rows.iter()
        .map(|r| (r.get::<i64, _>(0), r.get::<i64, _>(1)))
        .collect()
}

#[wharf_testkit::dual_test]
async fn two_sessions_devices_do_not_see_each_others_rows(app: wharf_testkit::TestApp) {
    let (a_id, b_id) = (session(&app).await, session(&app).await);
    let a = device_store(&app.store, a_id);
    let b = device_store(&app.store, b_id);
    a.create().await.unwrap();
    a.put_identity("1@s.whatsapp.net", [1; 32]).await.unwrap();
    a.put_session("1@s.whatsapp.net", b"a's").await.unwrap();
    a.store_prekey(1, b"a's", false).await.unwrap();
    a.store_signed_prekey(1, b"a's").await.unwrap();
    a.put_sender_key("g", b"a's").await.unwrap();
    a.set_sync_key(b"k", AppStateSyncKey::default())
        .await
        .unwrap();
    a.put_mutation_macs(
        "regular",
        1,
        &[AppStateMutationMAC {
            index_mac: vec![1; 32],
            value_mac: vec![2; 32],
        }],
    )
    .await
    .unwrap();
    a.set_sender_key_status("g@g.us", &[("d@lid", true)])
        .await
        .unwrap();
    a.put_lid_mapping(&LidPnMappingEntry {
        lid: "100".into(),
        phone_number: "155".into(),
        created_at: 1,
        updated_at: 1,
        learning_source: "usync".into(),
    })
    .await
    .unwrap();
    a.save_base_key("a", "m", b"bk").await.unwrap();
    a.touch_tc_token_sender_timestamp("1@lid", 5).await.unwrap();
    a.store_sent_message("c", "m", b"p").await.unwrap();
    a.store_pending_inbound("c", "s", "i", b"p").await.unwrap();
    a.put_msg_secret("c", "s", "m", &[1; 32]).await.unwrap();

    assert!(!b.exists().await.unwrap());
    assert!(b.load().await.unwrap().is_none());
    assert!(b.load_identity("1@s.whatsapp.net").await.unwrap().is_none());
    assert!(b.get_session("1@s.whatsapp.net").await.unwrap().is_none());
    assert!(!b.has_signal_state_for_user("1").await.unwrap());
    assert!(b.load_prekey(1).await.unwrap().is_none());
    assert_eq!(b.get_max_prekey_id().await.unwrap(), 0);
    assert!(b.load_all_signed_prekeys().await.unwrap().is_empty());
    assert!(b.get_sender_key("g").await.unwrap().is_none());
    assert!(b.get_sync_key(b"k").await.unwrap().is_none());
    assert!(b.get_latest_sync_key_id().await.unwrap().is_none());
    assert!(
        b.get_mutation_mac("regular", &[1; 32])
            .await
            .unwrap()
            .is_none()
    );
    assert!(b.get_sender_key_devices("g@g.us").await.unwrap().is_empty());
    assert!(b.get_all_lid_mappings().await.unwrap().is_empty());
    assert!(!b.has_same_base_key("a", "m", b"bk").await.unwrap());
    assert!(b.get_all_tc_token_jids().await.unwrap().is_empty());
    assert!(b.take_sent_message("c", "m").await.unwrap().is_none());
    assert!(
        b.get_pending_inbound("c", "s", "i")
            .await
            .unwrap()
            .is_none()
    );
    assert!(b.get_msg_secret("c", "s", "m").await.unwrap().is_none());
    // Sweeps and clears of one touch nothing of the other.
    b.clear_all_sender_key_devices().await.unwrap();
    assert_eq!(b.delete_expired_sent_messages(i64::MAX).await.unwrap(), 0);
    assert_eq!(b.delete_expired_pending_inbound(i64::MAX).await.unwrap(), 0);
    assert_eq!(
        b.delete_expired_tc_tokens(i64::MAX, i64::MAX)
            .await
            .unwrap(),
        0
    );
    app.store.delete_web_device(b_id).await.unwrap();
    assert_eq!(a.get_sender_key_devices("g@g.us").await.unwrap().len(), 1);
    assert!(a.take_sent_message("c", "m").await.unwrap().is_some());
    assert!(a.exists().await.unwrap());

    // A store of `a` with another key cannot read a's secrets (and says why).
    let wrong = WebDeviceStore::new(app.store.clone(), a_id, sealer(8));
    assert!(wrong.get_session("1@s.whatsapp.net").await.is_err());
    assert!(wrong.load().await.is_err());

    // Deleting a's device removes every row of it.
    app.store.delete_web_device(a_id).await.unwrap();
    assert!(!app.store.web_device_exists(a_id).await.unwrap());
    assert!(a.get_session("1@s.whatsapp.net").await.unwrap().is_none());
    assert!(
        a.get_pending_inbound("c", "s", "i")
            .await
            .unwrap()
            .is_none()
    );
    assert!(a.get_msg_secret("c", "s", "m").await.unwrap().is_none());
    assert!(a.get_all_lid_mappings().await.unwrap().is_empty());
}

#[wharf_testkit::dual_test]
async fn a_device_saved_through_the_persistence_manager_survives_a_reopened_store(
    app: wharf_testkit::TestApp,
) {
    let id = session(&app).await;
    let url = app.db().url().to_owned();
    let saved = {
        let store = Store::open(&url).await.unwrap();
        let manager = PersistenceManager::new(Arc::new(device_store(&store, id)))
            .await
            .unwrap();
        manager
            .modify_device(|d| {
                d.push_name = "Wharf test".into();
                d.pn = Some("15550002222:4@s.whatsapp.net".parse().unwrap());
                d.lid = Some("100000012345678:4@lid".parse().unwrap());
                d.next_pre_key_id = 813;
                d.server_has_prekeys = true;
            })
            .await;
        manager.flush().await.unwrap();
        let saved = (*manager.get_device_snapshot()).clone();
        store.close().await;
        saved
    };
    let store = Store::open(&url).await.unwrap();
    assert!(store.web_device_exists(id).await.unwrap());
    let manager = PersistenceManager::new(Arc::new(device_store(&store, id)))
        .await
        .unwrap();
    let loaded = manager.get_device_snapshot();
    assert_eq!(json(&loaded), json(&saved));
    assert_eq!(loaded.push_name, "Wharf test");
    assert_eq!(
        loaded.identity_key.private_key.serialize(),
        saved.identity_key.private_key.serialize()
    );
    assert!(
        loaded.is_registered(),
        "a linked device reconnects without a QR"
    );
    store.close().await;
}

/// Every byte the database holds for a device: the SQLite files, or on PostgreSQL every
/// value of its tables.
async fn database_bytes(app: &wharf_testkit::TestApp) -> Vec<u8> {
    use sqlx::{Connection, Row};
    let url = app.db().url();
    if let Some(rest) = url.strip_prefix("sqlite://") {
        let path = rest.split('?').next().unwrap();
        let mut all = Vec::new();
        for suffix in ["", "-wal"] {
            if let Ok(bytes) = std::fs::read(format!("{path}{suffix}")) {
                all.extend(bytes);
            }
        }
        return all;
    }
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(url).await.unwrap();
    let mut all = Vec::new();
    for (table, column) in [
        ("web_devices", "device"),
        ("web_kv", "v"),
        ("web_prekeys", "record"),
        ("web_sync_keys", "v"),
        ("web_sent_messages", "payload"),
        ("web_pending_inbound", "message"),
        ("web_msg_secrets", "secret"),
        ("web_tc_tokens", "token"),
    ] {
        let sql = format!("SELECT {column} FROM {table}");
        for row in sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(&mut conn)
            .await
            .unwrap()
        {
            all.extend(row.get::<Vec<u8>, _>(0));
        }
    }
    all
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[wharf_testkit::dual_test]
async fn a_devices_secrets_are_not_readable_in_the_database(app: wharf_testkit::TestApp) {
    let id = session(&app).await;
    let s = device_store(&app.store, id);
    let device = Device::new();
    s.save(&device).await.unwrap();
    // Distinctive 32-byte secrets, written where the client writes its secrets.
    let marker = |n: u8| -> Vec<u8> {
        (0..32)
            .map(|i| n.wrapping_mul(31).wrapping_add(i * 7))
            .collect()
    };
    s.put_session("1@s.whatsapp.net", &marker(1)).await.unwrap();
    s.put_sessions_batch(&[(Arc::from("2@s.whatsapp.net"), Bytes::from(marker(2)))])
        .await
        .unwrap();
    s.store_prekey(1, &marker(3), false).await.unwrap();
    s.store_prekeys_batch(&[(2, Bytes::from(marker(4)))], false)
        .await
        .unwrap();
    s.store_signed_prekey(1, &marker(5)).await.unwrap();
    s.put_sender_key("g", &marker(6)).await.unwrap();
    s.set_sync_key(
        b"k",
        AppStateSyncKey {
            key_data: marker(7),
            fingerprint: vec![],
            timestamp: 0,
        },
    )
    .await
    .unwrap();
    s.put_msg_secret("c", "s", "m", &<[u8; 32]>::try_from(marker(8)).unwrap())
        .await
        .unwrap();
    s.store_sent_message("c", "m", &marker(9)).await.unwrap();
    s.store_pending_inbound("c", "s", "i", &marker(10))
        .await
        .unwrap();
    // Privacy tokens, as set and as received.
    s.put_tc_token(
        "11@s.whatsapp.net",
        &TcTokenEntry {
            token: marker(11),
            token_timestamp: 1,
            sender_timestamp: None,
        },
    )
    .await
    .unwrap();
    s.store_received_tc_token("12@s.whatsapp.net", &marker(12), 2)
        .await
        .unwrap();

    let bytes = database_bytes(&app).await;
    assert!(
        contains(&bytes, b"web_devices") || app.backend() == wharf_testkit::Backend::Postgres,
        "the scan reads the database"
    );
    let private = [
        device.identity_key.private_key.serialize().to_vec(),
        device.noise_key.private_key.serialize().to_vec(),
        device.signed_pre_key.private_key.serialize().to_vec(),
        device.adv_secret_key.to_vec(),
    ];
    for (i, key) in private.iter().enumerate() {
        assert!(!contains(&bytes, key), "device key {i} is in the database");
        // serde_json writes bytes as numbers: the device's JSON form is not there either.
        let text = key[..8]
            .iter()
            .map(|b| b.to_string())
            .collect::<Vec<_>>()
            .join(",");
        assert!(
            !contains(&bytes, text.as_bytes()),
            "device key {i} is in the database as JSON"
        );
    }
    for n in 1..=12 {
        assert!(
            !contains(&bytes, &marker(n)),
            "secret {n} is in the database"
        );
    }
    // And they all read back.
    assert_eq!(
        s.get_session("1@s.whatsapp.net").await.unwrap().as_deref(),
        Some(&marker(1)[..])
    );
    for (jid, n) in [("11@s.whatsapp.net", 11), ("12@s.whatsapp.net", 12)] {
        let token = s.get_tc_token(jid).await.unwrap().expect("a token").token;
        assert_eq!(token, marker(n), "the token of {jid} reads back");
    }
    assert_eq!(
        s.load()
            .await
            .unwrap()
            .unwrap()
            .identity_key
            .private_key
            .serialize(),
        device.identity_key.private_key.serialize()
    );
}

mod probe {
    use std::sync::Arc;

    use whatsapp_rust::{
        Client, ClientBuilder, InboundDurabilityHook, TokioRuntime,
        http::{HttpClient, HttpRequest, HttpResponse},
        transport::TokioWebSocketTransportFactory,
        wacore::types::events::InboundMessage,
    };

    /// An HTTP client that is never reached (the client is built, not connected).
    pub struct NoHttp;

    #[async_trait::async_trait]
    impl HttpClient for NoHttp {
        async fn execute(&self, _: HttpRequest) -> whatsapp_rust::anyhow::Result<HttpResponse> {
            Err(whatsapp_rust::anyhow::anyhow!("no network in tests"))
        }
    }

    pub struct Hook;

    #[async_trait::async_trait]
    impl InboundDurabilityHook for Hook {
        async fn on_messages(
            &self,
            _: Arc<Client>,
            _: &[InboundMessage],
        ) -> whatsapp_rust::anyhow::Result<()> {
            Ok(())
        }
    }

    pub fn builder() -> ClientBuilder {
        ClientBuilder::new()
            .with_runtime(TokioRuntime)
            .with_transport_factory(TokioWebSocketTransportFactory::new())
            .with_http_client(NoHttp)
            .with_version_override((2, 3000, 1))
            .with_skip_history_sync(true)
    }
}

#[wharf_testkit::dual_test]
async fn a_client_with_an_inbound_durability_hook_builds_on_the_device_store(
    app: wharf_testkit::TestApp,
) {
    let id = session(&app).await;
    let s = device_store(&app.store, id);
    let manager = Arc::new(PersistenceManager::new(Arc::new(s.clone())).await.unwrap());
    match probe::builder()
        .with_persistence_manager(manager)
        .with_inbound_durability_hook(probe::Hook)
        .build()
        .await
    {
        Ok(built) => drop(built),
        Err(e) => panic!("the client does not build on the device store: {e:?}"),
    }
    // The probe cleaned up after itself.
    let leftovers: Vec<(i64, i64)> =
        sqlx_rows(&app, "SELECT COUNT(*), COUNT(*) FROM web_pending_inbound").await;
    assert_eq!(leftovers, vec![(0, 0)]);
    // And the probe's own key round-trips directly.
    let key = format!("__wa_durability_probe_{}_0__", std::process::id());
    s.store_pending_inbound("0@s.whatsapp.net", "0@s.whatsapp.net", &key, b"probe")
        .await
        .unwrap();
    assert_eq!(
        s.get_pending_inbound("0@s.whatsapp.net", "0@s.whatsapp.net", &key)
            .await
            .unwrap()
            .as_deref(),
        Some(&b"probe"[..])
    );
    s.delete_pending_inbound("0@s.whatsapp.net", "0@s.whatsapp.net", &key)
        .await
        .unwrap();
    assert!(
        s.get_pending_inbound("0@s.whatsapp.net", "0@s.whatsapp.net", &key)
            .await
            .unwrap()
            .is_none()
    );
}

#[wharf_testkit::dual_test]
async fn deleting_a_session_removes_its_web_device(app: wharf_testkit::TestApp) {
    let id = session(&app).await;
    let keep = session(&app).await;
    for session in [id, keep] {
        let s = device_store(&app.store, session);
        s.create().await.unwrap();
        s.put_session("1@s.whatsapp.net", b"record").await.unwrap();
        s.put_msg_secret("c", "s", "m", &[1; 32]).await.unwrap();
    }
    app.delete(&format!("/v1/whatsapp-sessions/{id}"))
        .expect(202)
        .await;
    app.eventually(&format!("/v1/whatsapp-sessions/{id}"), |s| {
        s["status"] == "deleted"
    })
    .await;
    assert!(!app.store.web_device_exists(id).await.unwrap());
    let gone = device_store(&app.store, id);
    assert!(
        gone.get_session("1@s.whatsapp.net")
            .await
            .unwrap()
            .is_none()
    );
    assert!(gone.get_msg_secret("c", "s", "m").await.unwrap().is_none());
    let kept = device_store(&app.store, keep);
    assert!(kept.exists().await.unwrap());
    assert!(
        kept.get_session("1@s.whatsapp.net")
            .await
            .unwrap()
            .is_some()
    );
}
