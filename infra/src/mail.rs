//! The e-mail outbox: mails are written in the transaction of the change that
//! causes them and sent later by the outbox worker.
//!
//! Every replica runs the worker. A worker *claims* due rows by pushing their
//! `next_attempt_at` past the time it needs to send them (on PostgreSQL under
//! `FOR UPDATE SKIP LOCKED`), so no other replica sees them as due; it then
//! sends them and records the outcome only while its claim still holds. A mail
//! that cannot be sent stays `pending` and is retried with exponential backoff
//! until the attempt limit; only then, or when the server refuses it for good,
//! is it `failed`.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};
use countersign_domain::notification::{Notice, render};
use countersign_domain::{Error, Result};
use lettre::message::header::ContentType;
use lettre::message::{Mailbox, Message};
use lettre::{AsyncFileTransport, AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use rand::Rng;
use sea_orm::sea_query::{Expr, LockBehavior, LockType};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, Set, TransactionTrait,
};
use uuid::Uuid;

use crate::db::DbResult;
use crate::entities::{mail_outbox, tenants};
use crate::tenants::to_domain as tenant_to_domain;

/// Queues one mail per recipient, rendered in the tenant's language and time zone.
pub(crate) async fn enqueue(
    conn: &impl ConnectionTrait,
    tenant: &tenants::Model,
    recipients: &[String],
    notice: &Notice,
    public_url: &str,
    now: DateTime<Utc>,
) -> Result<()> {
    let domain = tenant_to_domain(tenant.clone())?;
    let mail = render(
        notice,
        domain.settings.locale,
        domain.fixed().base_timezone(),
        public_url,
    );
    for recipient in recipients {
        mail_outbox::ActiveModel {
            id: Set(Uuid::now_v7()),
            tenant_id: Set(Some(tenant.id)),
            recipient: Set(recipient.clone()),
            subject: Set(mail.subject.clone()),
            body: Set(mail.body.clone()),
            status: Set("pending".to_owned()),
            attempts: Set(0),
            next_attempt_at: Set(now),
            last_error: Set(None),
            created_at: Set(now),
            sent_at: Set(None),
            secret: Set(notice.is_secret()),
        }
        .insert(conn)
        .await
        .db()?;
    }
    Ok(())
}

/// [`enqueue`] for a tenant known by its id, for callers outside this crate.
pub async fn enqueue_for_tenant(
    conn: &impl ConnectionTrait,
    tenant_id: Uuid,
    recipients: &[String],
    notice: &Notice,
    public_url: &str,
    now: DateTime<Utc>,
) -> Result<()> {
    let tenant = tenants::Entity::find_by_id(tenant_id)
        .one(conn)
        .await
        .db()?
        .ok_or_else(|| Error::not_found("tenant"))?;
    enqueue(conn, &tenant, recipients, notice, public_url, now).await
}

/// What a secret mail's body reads once it was sent or given up.
const WIPED: &str = "(wiped after delivery: it carried a one-time PIN)";

/// Rows claimed per round.
const BATCH: u64 = 10;
/// The longest one mail may take to send; the claim outlasts a whole batch of them.
const SEND_TIMEOUT: Duration = Duration::from_secs(15);
/// First retry delay, doubled per failed attempt up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(5);
const MAX_BACKOFF: Duration = Duration::from_secs(15 * 60);

/// How the outbox sends.
#[derive(Debug, Clone)]
pub struct MailerSettings {
    /// `smtp://host:port` (plain, or `?tls=required` for STARTTLS) or
    /// `smtps://host:port`; `None` writes mails as files into `mail_dir`.
    pub smtp_url: Option<String>,
    pub mail_dir: PathBuf,
    /// The sender, e.g. `Countersign <noreply@example.com>`.
    pub from: String,
    /// Failed attempts after which a mail is given up (`failed`).
    pub max_attempts: u32,
}

/// What one round of the outbox worker did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeliveryReport {
    pub sent: usize,
    /// Given up for good: refused permanently or out of attempts.
    pub failed: usize,
    /// Failed for now; tried again later.
    pub retried: usize,
}

enum Transport {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    Files {
        dir: PathBuf,
        transport: AsyncFileTransport<Tokio1Executor>,
    },
}

/// The outbox worker: sends due mails over SMTP or into a folder.
pub struct Mailer {
    db: DatabaseConnection,
    transport: Transport,
    from: Mailbox,
    max_attempts: i32,
    /// Failed send attempts since the process started, for `/metrics`.
    send_failures: Arc<AtomicU64>,
}

/// Why a send failed, and whether trying again can help.
struct SendError {
    message: String,
    permanent: bool,
}

impl Mailer {
    pub fn new(db: DatabaseConnection, settings: &MailerSettings) -> anyhow::Result<Self> {
        let from: Mailbox = settings
            .from
            .parse()
            .map_err(|err| anyhow::anyhow!("COUNTERSIGN_MAIL_FROM `{}`: {err}", settings.from))?;
        let transport = match &settings.smtp_url {
            Some(url) => Transport::Smtp(
                AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
                    .map_err(|err| anyhow::anyhow!("SMTP_URL: {err}"))?
                    .timeout(Some(SEND_TIMEOUT))
                    .build(),
            ),
            None => Transport::Files {
                dir: settings.mail_dir.clone(),
                transport: AsyncFileTransport::new(&settings.mail_dir),
            },
        };
        anyhow::ensure!(
            settings.max_attempts >= 1,
            "the mail attempt limit must be at least 1"
        );
        Ok(Self {
            db,
            transport,
            from,
            max_attempts: i32::try_from(settings.max_attempts).unwrap_or(i32::MAX),
            send_failures: Arc::default(),
        })
    }

    /// The count of failed send attempts (retried or given up) of this worker.
    pub fn send_failures(&self) -> Arc<AtomicU64> {
        self.send_failures.clone()
    }

    /// Sends the mails due at `now`, one claimed batch after another until none
    /// is due.
    pub async fn deliver_due(&self, now: DateTime<Utc>) -> Result<DeliveryReport> {
        let mut report = DeliveryReport::default();
        loop {
            let (claimed, claim) = self.claim(now).await?;
            if claimed.is_empty() {
                return Ok(report);
            }
            for row in claimed {
                self.deliver(row, claim, now, &mut report).await?;
            }
        }
    }

    /// Takes up to [`BATCH`] due rows: they are due again only at the returned
    /// time, long after this worker has sent them.
    async fn claim(&self, now: DateTime<Utc>) -> Result<(Vec<mail_outbox::Model>, DateTime<Utc>)> {
        let claim = (now + chrono_duration(SEND_TIMEOUT * (BATCH as u32 + 4))).trunc_subsecs(6);
        let txn = self.db.begin().await.db()?;
        // SQLite ignores the lock clause; it has one writer anyway.
        let due = mail_outbox::Entity::find()
            .filter(mail_outbox::Column::Status.eq("pending"))
            .filter(mail_outbox::Column::NextAttemptAt.lte(now))
            .order_by_asc(mail_outbox::Column::NextAttemptAt)
            .limit(BATCH)
            .lock_with_behavior(LockType::Update, LockBehavior::SkipLocked)
            .all(&txn)
            .await
            .db()?;
        let mut claimed = Vec::with_capacity(due.len());
        for row in due {
            // Compare-and-set: a row another worker claimed meanwhile is no longer due.
            let taken = mail_outbox::Entity::update_many()
                .col_expr(mail_outbox::Column::NextAttemptAt, Expr::value(claim))
                .filter(mail_outbox::Column::Id.eq(row.id))
                .filter(mail_outbox::Column::Status.eq("pending"))
                .filter(mail_outbox::Column::NextAttemptAt.lte(now))
                .exec(&txn)
                .await
                .db()?;
            if taken.rows_affected == 1 {
                claimed.push(row);
            }
        }
        txn.commit().await.db()?;
        Ok((claimed, claim))
    }

    async fn deliver(
        &self,
        row: mail_outbox::Model,
        claim: DateTime<Utc>,
        now: DateTime<Utc>,
        report: &mut DeliveryReport,
    ) -> Result<()> {
        let attempts = row.attempts.saturating_add(1);
        let outcome = match tokio::time::timeout(SEND_TIMEOUT, self.send(&row)).await {
            Ok(outcome) => outcome,
            Err(_) => Err(SendError {
                message: format!("no answer within {} s", SEND_TIMEOUT.as_secs()),
                permanent: false,
            }),
        };
        let update = mail_outbox::Entity::update_many()
            .col_expr(mail_outbox::Column::Attempts, Expr::value(attempts))
            .filter(mail_outbox::Column::Id.eq(row.id))
            .filter(mail_outbox::Column::Status.eq("pending"))
            .filter(mail_outbox::Column::NextAttemptAt.eq(claim));
        if outcome.is_err() {
            self.send_failures.fetch_add(1, Ordering::Relaxed);
        }
        let ends = match &outcome {
            Ok(()) => true,
            Err(err) => err.permanent || attempts >= self.max_attempts,
        };
        let update = if row.secret && ends {
            update.col_expr(mail_outbox::Column::Body, Expr::value(WIPED))
        } else {
            update
        };
        let update = match outcome {
            Ok(()) => {
                report.sent += 1;
                update
                    .col_expr(mail_outbox::Column::Status, Expr::value("sent"))
                    .col_expr(mail_outbox::Column::SentAt, Expr::value(Some(now)))
                    .col_expr(
                        mail_outbox::Column::LastError,
                        Expr::value(Option::<String>::None),
                    )
            }
            Err(err) if err.permanent || attempts >= self.max_attempts => {
                report.failed += 1;
                tracing::error!(mail = %row.id, attempts, error = %err.message, "mail given up");
                update
                    .col_expr(mail_outbox::Column::Status, Expr::value("failed"))
                    .col_expr(
                        mail_outbox::Column::LastError,
                        Expr::value(Some(err.message)),
                    )
            }
            Err(err) => {
                report.retried += 1;
                let next = now + chrono_duration(backoff(attempts));
                tracing::warn!(mail = %row.id, attempts, error = %err.message, next_attempt_at = %next, "mail not sent; retrying");
                update
                    .col_expr(
                        mail_outbox::Column::NextAttemptAt,
                        Expr::value(next.trunc_subsecs(6)),
                    )
                    .col_expr(
                        mail_outbox::Column::LastError,
                        Expr::value(Some(err.message)),
                    )
            }
        };
        let recorded = update.exec(&self.db).await.db()?;
        if recorded.rows_affected != 1 {
            tracing::error!(mail = %row.id, "the claim on a mail ran out while it was being sent");
        }
        Ok(())
    }

    async fn send(&self, row: &mail_outbox::Model) -> std::result::Result<(), SendError> {
        let permanent = |err: &dyn std::fmt::Display| SendError {
            message: err.to_string(),
            permanent: true,
        };
        let to: Mailbox = row.recipient.parse().map_err(|err| permanent(&err))?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(row.subject.clone())
            .message_id(Some(format!("<{}@{}>", row.id, self.from.email.domain())))
            .header(ContentType::TEXT_PLAIN)
            .body(row.body.clone())
            .map_err(|err| permanent(&err))?;
        match &self.transport {
            Transport::Smtp(smtp) => smtp.send(message).await.map(drop).map_err(|err| SendError {
                permanent: err.is_permanent(),
                message: err.to_string(),
            }),
            Transport::Files { dir, transport } => {
                let written = async {
                    tokio::fs::create_dir_all(dir).await?;
                    transport.send(message).await.map_err(std::io::Error::other)
                };
                written.await.map(drop).map_err(|err| SendError {
                    message: format!("writing to {}: {err}", dir.display()),
                    permanent: false,
                })
            }
        }
    }
}

/// `FIRST_BACKOFF · 2^(attempts − 1)`, at most [`MAX_BACKOFF`], ±20 % so that
/// mails that failed together are not retried together.
fn backoff(attempts: i32) -> Duration {
    let doublings = u32::try_from(attempts.saturating_sub(1))
        .unwrap_or(0)
        .min(16);
    let base = FIRST_BACKOFF
        .saturating_mul(1 << doublings)
        .min(MAX_BACKOFF);
    base.mul_f64(rand::rng().random_range(0.8..=1.2))
}

fn chrono_duration(duration: Duration) -> chrono::Duration {
    chrono::Duration::from_std(duration).unwrap_or(chrono::Duration::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_up_to_fifteen_minutes() {
        for _ in 0..200 {
            let first = backoff(1).as_secs_f64();
            assert!((4.0..=6.0).contains(&first), "{first}");
            let third = backoff(3).as_secs_f64();
            assert!((16.0..=24.0).contains(&third), "{third}");
            let late = backoff(30).as_secs_f64();
            assert!((720.0..=1080.0).contains(&late), "{late}");
        }
    }
}
