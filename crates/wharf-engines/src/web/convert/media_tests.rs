//! Received media references and poll votes, with the crate's real types and its own vote
//! encryption.

use whatsapp_rust::waproto::buffa::MessageField;

use super::*;

fn wa(text: &str) -> WaJid {
    text.parse().unwrap()
}

#[test]
fn received_media_keeps_its_download_reference_as_media_id() {
    let message = wa::Message {
        audio_message: MessageField::some(wa::message::AudioMessage {
            url: Some("https://mmg.whatsapp.net/v/t62/a.enc".into()),
            direct_path: Some("/v/t62.7117-24/a.enc".into()),
            media_key: Some(vec![4; 32]),
            file_sha256: Some(vec![5; 32]),
            file_enc_sha256: Some(vec![6; 32]),
            file_length: Some(4_321),
            mimetype: Some("audio/ogg; codecs=opus".into()),
            ptt: Some(true),
            ..Default::default()
        }),
        ..Default::default()
    };
    let Some(Content::Media {
        media: MessageKind::Audio,
        media_id: Some(token),
        ..
    }) = inbound_content(&message)
    else {
        panic!("{:?}", inbound_content(&message));
    };
    let reference = crate::web::media::decode_token(&token).unwrap();
    assert_eq!(
        reference,
        MediaRef {
            kind: MessageKind::Audio,
            direct_path: "/v/t62.7117-24/a.enc".into(),
            media_key: vec![4; 32],
            file_sha256: vec![5; 32],
            file_enc_sha256: vec![6; 32],
            file_length: 4_321,
        }
    );
}

#[test]
fn poll_votes_decrypt_with_the_polls_secret() {
    use whatsapp_rust::wacore::poll::{compute_option_hash, encrypt_poll_vote_with_secret};
    let secret = [7u8; 32];
    let creator = wa("15551230001@s.whatsapp.net");
    let voter = wa("15559870001@s.whatsapp.net");
    let chosen: Vec<Vec<u8>> = ["Tea", "Cake"]
        .iter()
        .map(|o| compute_option_hash(o).to_vec())
        .collect();
    let (enc_payload, iv) = encrypt_poll_vote_with_secret(
        &chosen,
        &secret,
        "3EB0POLL",
        &creator.to_string(),
        &voter.to_string(),
    )
    .unwrap();
    let vote = wa::message::PollUpdateMessage {
        poll_creation_message_key: MessageField::some(wa::MessageKey {
            remote_jid: Some(creator.to_string()),
            from_me: Some(false),
            id: Some("3EB0POLL".into()),
            participant: None,
        }),
        vote: MessageField::some(wa::message::PollEncValue {
            enc_payload: Some(enc_payload),
            enc_iv: Some(iv.to_vec()),
        }),
        ..Default::default()
    };
    let hashes = decrypt_vote(&vote, &secret, &creator, &voter).unwrap();
    assert_eq!(hashes, chosen);
    assert_eq!(
        vote_content("3EB0POLL", &hashes),
        Content::PollVote {
            target: None,
            target_provider_id: "3EB0POLL".into(),
            options: vec![],
            option_hashes: chosen.iter().map(hex::encode).collect(),
        }
    );
    // Another secret, or the roles swapped, do not open it.
    assert!(decrypt_vote(&vote, &[8u8; 32], &creator, &voter).is_err());
    assert!(decrypt_vote(&vote, &secret, &voter, &creator).is_err());
    let no_choice = wa::message::PollUpdateMessage {
        vote: MessageField::none(),
        ..vote.clone()
    };
    assert!(decrypt_vote(&no_choice, &secret, &creator, &voter).is_err());
    // Undecrypted, a vote still names its poll.
    let message = wa::Message {
        poll_update_message: MessageField::some(vote),
        ..Default::default()
    };
    assert_eq!(
        inbound_content(&message),
        Some(Content::Unsupported {
            provider_type: "poll_vote".into(),
            detail: Some("3EB0POLL".into()),
        })
    );
}
