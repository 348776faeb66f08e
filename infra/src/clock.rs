//! The system clock behind the domain's clock port.

use chrono::{DateTime, Utc};
use countersign_domain::ports::Clock;

#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}
