//! What every handler can reach: the domain's ports.

use std::sync::Arc;

use countersign_domain::ports::{Auth, Store};

pub struct AppState {
    pub store: Arc<dyn Store>,
    pub auth: Arc<dyn Auth>,
}
