//! The background sweeper: expiry of requests and retention of event data.

use chrono::{DateTime, Utc};
use countersign_domain::ports::{SweepReport, Sweeper};
use countersign_domain::Result;

use crate::store::Store;

#[async_trait::async_trait]
impl Sweeper for Store {
    async fn sweep(&self, _now: DateTime<Utc>) -> Result<SweepReport> {
        Ok(SweepReport::default())
    }
}
