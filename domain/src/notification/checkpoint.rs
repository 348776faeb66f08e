//! The daily checkpoint mail to auditors: the latest checkpoint, in a form
//! that pastes back into `POST /v1/history/verify` as it is.

use chrono_tz::Tz;

use super::Body;
use crate::history::Checkpoint;
use crate::tenant::Locale;

/// The body of `POST /v1/history/verify` that checks `checkpoint`, on one line.
pub fn verify_body(checkpoint: &Checkpoint) -> String {
    serde_json::json!({"checkpoints": [checkpoint]}).to_string()
}

/// Writes the mail's body; answers its subject.
pub(super) fn render(
    body: &mut Body,
    locale: Locale,
    tz: Tz,
    base: &str,
    tenant_name: &str,
    checkpoint: &Checkpoint,
) -> String {
    let seq = checkpoint.seq;
    let at = checkpoint
        .signed_at
        .with_timezone(&tz)
        .format(body.words.time_format)
        .to_string();
    body.line(match locale {
        Locale::De => format!(
            "Die Historie von {tenant_name} wurde bis Eintrag {seq} signiert ({at}). Bewahren Sie diese Nachricht auf: Sie bezeugt den Stand der Historie außerhalb der Datenbank von Countersign."
        ),
        Locale::En => format!(
            "The history of {tenant_name} was signed up to entry {seq} ({at}). Keep this message: it witnesses the state of the history outside Countersign's database."
        ),
    });
    body.line(match locale {
        Locale::De => "Um zu prüfen, dass seither kein Eintrag entfernt oder umgeschrieben wurde, senden Sie die folgende Zeile unverändert an POST /v1/history/verify oder übergeben Sie sie an `countersign history verify --checkpoint`:".to_owned(),
        Locale::En => "To check that no entry was removed or rewritten since, send the following line unchanged to POST /v1/history/verify, or pass it to `countersign history verify --checkpoint`:".to_owned(),
    });
    body.line(verify_body(checkpoint));
    body.link(&format!("{base}/history"));
    match locale {
        Locale::De => format!("Signierter Stand der Historie: {tenant_name}, Eintrag {seq}"),
        Locale::En => format!("Signed state of the history: {tenant_name}, entry {seq}"),
    }
}

#[cfg(test)]
pub(super) mod tests {
    #![allow(clippy::unwrap_used)]
    use chrono::TimeZone;

    use super::*;
    use crate::notification::{Notice, render};

    pub(in crate::notification) fn example() -> Checkpoint {
        Checkpoint {
            tenant_id: uuid::Uuid::from_u128(5),
            seq: 42,
            hash: "ab".repeat(32),
            signed_at: chrono::Utc
                .with_ymd_and_hms(2025, 1, 15, 12, 30, 0)
                .unwrap(),
            key_id: "0123456789abcdef".into(),
            signature: format!("{}==", "A".repeat(86)),
        }
    }

    #[test]
    fn the_mail_carries_a_line_that_pastes_back_into_verify() {
        let notice = Notice::CheckpointWitness {
            tenant_name: "Stadtwerke".into(),
            checkpoint: example(),
        };
        for locale in [Locale::De, Locale::En] {
            let mail = render(
                &notice,
                locale,
                chrono_tz::Europe::Berlin,
                "https://cs.example",
            );
            let line = mail
                .body
                .lines()
                .find(|l| l.starts_with(r#"{"checkpoints""#))
                .unwrap();
            let body: serde_json::Value = serde_json::from_str(line).unwrap();
            let pasted: Checkpoint =
                serde_json::from_value(body["checkpoints"][0].clone()).unwrap();
            assert_eq!(pasted, example());
            assert!(mail.subject.contains("42"), "{}", mail.subject);
        }
    }
}
