//! `POST /v1/imports`: the extension import, inventory in bulk.

use actix_web::{post, web};
use countersign_domain::permission::Action;
use countersign_domain::ports::{ImportBatch, ImportOutcome, ImportReport};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use validator::{Validate, ValidationError, ValidationErrors};

use crate::extract::{Caller, Valid};
use crate::problem::{self, ApiError, ListProblems, Problem};
use crate::routes::inventory::{CylinderIn, KeyGroupIn, RemoteDeviceIn};
use crate::routes::keys::KeyIn;
use crate::state::AppState;

/// This route's body limit: up to 5,000 items per kind.
pub const IMPORT_JSON_LIMIT: usize = 4 * 1024 * 1024;
const MAX_ITEMS: usize = 5000;

/// The JSON settings of the import scope.
pub fn json_config() -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(IMPORT_JSON_LIMIT)
        .error_handler(problem::json_error)
}

/// An imported programming key: in stock, without roles or PIN.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImportProgrammingKey {
    #[schema(
        min_length = 1,
        max_length = 64,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000](?:[^\u0000-\u001f\u007f-\u009f]*[^\u0000-\u001f\u007f-\u009f \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000])?$"
    )]
    pub marking: String,
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\u0000-\u001f\u007f-\u009f \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\u0000-\u001f\u007f-\u009f]*$"
    )]
    pub name: String,
}

/// Every kind is optional, each at most 5,000 items. Existing markings (serials
/// for remote devices) are left as they are.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImportIn {
    #[serde(default)]
    pub keys: Vec<KeyIn>,
    #[serde(default)]
    pub key_groups: Vec<KeyGroupIn>,
    #[serde(default)]
    pub cylinders: Vec<CylinderIn>,
    #[serde(default)]
    pub remote_devices: Vec<RemoteDeviceIn>,
    #[serde(default)]
    pub programming_keys: Vec<ImportProgrammingKey>,
}

/// Only the size of every kind is checked here (by hand: `validator` would copy
/// the whole array into its error). The items are checked by the import, which
/// names the first bad one (`keys[3]: …`) and imports nothing.
impl Validate for ImportIn {
    fn validate(&self) -> Result<(), ValidationErrors> {
        let mut errors = ValidationErrors::new();
        for (field, len) in [
            ("keys", self.keys.len()),
            ("key_groups", self.key_groups.len()),
            ("cylinders", self.cylinders.len()),
            ("remote_devices", self.remote_devices.len()),
            ("programming_keys", self.programming_keys.len()),
        ] {
            if len > MAX_ITEMS {
                errors.add(
                    field,
                    ValidationError::new("length").with_message("at most 5000 items".into()),
                );
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }
}

/// Per kind: markings (serials for remote devices).
#[derive(Debug, Serialize, ToSchema)]
pub struct ImportOutcomeOut {
    pub created: Vec<String>,
    pub existing: Vec<String>,
}

impl From<ImportOutcome> for ImportOutcomeOut {
    fn from(o: ImportOutcome) -> Self {
        ImportOutcomeOut {
            created: o.created,
            existing: o.existing,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ImportReportOut {
    pub keys: ImportOutcomeOut,
    pub key_groups: ImportOutcomeOut,
    pub cylinders: ImportOutcomeOut,
    pub remote_devices: ImportOutcomeOut,
    pub programming_keys: ImportOutcomeOut,
}

impl From<ImportReport> for ImportReportOut {
    fn from(r: ImportReport) -> Self {
        ImportReportOut {
            keys: r.keys.into(),
            key_groups: r.key_groups.into(),
            cylinders: r.cylinders.into(),
            remote_devices: r.remote_devices.into(),
            programming_keys: r.programming_keys.into(),
        }
    }
}

fn batch(b: ImportIn) -> ImportBatch {
    ImportBatch {
        keys: b.keys.into_iter().map(Into::into).collect(),
        key_groups: b
            .key_groups
            .into_iter()
            .map(|g| (g.marking, g.name))
            .collect(),
        cylinders: b.cylinders.into_iter().map(Into::into).collect(),
        remote_devices: b.remote_devices.into_iter().map(Into::into).collect(),
        programming_keys: b
            .programming_keys
            .into_iter()
            .map(|k| (k.marking, k.name))
            .collect(),
    }
}

// Mounted in its own scope at `/v1/imports`, which carries [`json_config`].
/// Adds inventory in bulk, in one transaction, idempotent by marking.
#[utoipa::path(
    tag = "imports",
    request_body = ImportIn,
    responses(
        (status = 200, description = "All in one transaction; what was created and what was already there, per kind", body = ImportReportOut),
        (status = 413, description = "Body over 4 MiB", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "An item is invalid or refers to an unknown key group; nothing is imported", body = Problem, content_type = "application/problem+json"),
        ListProblems,
    ),
    security(("bearer" = []))
)]
#[post("")]
pub async fn import(
    state: web::Data<AppState>,
    caller: Caller,
    body: Valid<ImportIn>,
) -> Result<web::Json<ImportReportOut>, ApiError> {
    let t = caller.principal.tenant_for(Action::Import)?;
    let report = state
        .store
        .import(t, &caller.principal, batch(body.into_inner()))
        .await?;
    Ok(web::Json(report.into()))
}
