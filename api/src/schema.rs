//! OpenAPI schemas of the domain's enumerations, which stay free of web crates.
//! Bodies carry the domain types themselves; these only describe them.

#![allow(dead_code)]

use utoipa::ToSchema;

/// A tenant role (SPEC §2).
#[derive(ToSchema)]
#[schema(as = Role)]
#[allow(clippy::enum_variant_names)]
pub enum RoleName {
    #[schema(rename = "super_administrator")]
    SuperAdministrator,
    #[schema(rename = "system_administrator")]
    SystemAdministrator,
    #[schema(rename = "approver")]
    Approver,
    #[schema(rename = "cylinder_programmer")]
    CylinderProgrammer,
    #[schema(rename = "receptionist")]
    Receptionist,
    #[schema(rename = "auditor")]
    Auditor,
    #[schema(rename = "webservice")]
    Webservice,
}

/// A role a programming key may hold: every tenant role but `webservice`.
#[derive(ToSchema)]
#[schema(as = ProgrammingKeyRole)]
#[allow(clippy::enum_variant_names)]
pub enum ProgrammingKeyRoleName {
    #[schema(rename = "super_administrator")]
    SuperAdministrator,
    #[schema(rename = "system_administrator")]
    SystemAdministrator,
    #[schema(rename = "approver")]
    Approver,
    #[schema(rename = "cylinder_programmer")]
    CylinderProgrammer,
    #[schema(rename = "receptionist")]
    Receptionist,
    #[schema(rename = "auditor")]
    Auditor,
}

/// A role a webservice credential may carry: never `approver` or
/// `super_administrator`; `webservice` is always added.
#[derive(ToSchema)]
#[schema(as = WebserviceRole)]
#[allow(clippy::enum_variant_names)]
pub enum WebserviceRoleName {
    #[schema(rename = "system_administrator")]
    SystemAdministrator,
    #[schema(rename = "cylinder_programmer")]
    CylinderProgrammer,
    #[schema(rename = "receptionist")]
    Receptionist,
    #[schema(rename = "auditor")]
    Auditor,
    #[schema(rename = "webservice")]
    Webservice,
}

#[derive(ToSchema)]
#[schema(as = Locale)]
pub enum LocaleName {
    #[schema(rename = "de")]
    De,
    #[schema(rename = "en")]
    En,
}

#[derive(ToSchema)]
#[schema(as = TenantStatus)]
pub enum TenantStatusName {
    #[schema(rename = "active")]
    Active,
    #[schema(rename = "suspended")]
    Suspended,
}

#[derive(ToSchema)]
#[schema(as = KeyStatus)]
pub enum KeyStatusName {
    #[schema(rename = "in_stock")]
    InStock,
    #[schema(rename = "issued")]
    Issued,
    #[schema(rename = "returned")]
    Returned,
}

#[derive(ToSchema)]
#[schema(as = KeyModel)]
pub enum KeyModelName {
    #[schema(rename = "e2")]
    E2,
    #[schema(rename = "e3")]
    E3,
    #[schema(rename = "basic")]
    Basic,
}

#[derive(ToSchema)]
#[schema(as = DeviceKind)]
pub enum DeviceKindName {
    #[schema(rename = "remote_unit")]
    RemoteUnit,
    #[schema(rename = "desk_unit")]
    DeskUnit,
}

#[derive(ToSchema)]
#[schema(as = PrincipalKind)]
pub enum PrincipalKindName {
    #[schema(rename = "user")]
    User,
    #[schema(rename = "webservice")]
    Webservice,
    #[schema(rename = "agent")]
    Agent,
    #[schema(rename = "operator")]
    Operator,
}

#[derive(ToSchema)]
#[schema(as = TargetType)]
pub enum TargetTypeName {
    #[schema(rename = "key")]
    Key,
    #[schema(rename = "cylinder")]
    Cylinder,
}

#[derive(ToSchema)]
#[schema(as = RequestStatus)]
pub enum RequestStatusName {
    #[schema(rename = "pending_approval")]
    PendingApproval,
    #[schema(rename = "approved")]
    Approved,
    #[schema(rename = "rejected")]
    Rejected,
    #[schema(rename = "cancelled")]
    Cancelled,
    #[schema(rename = "expired")]
    Expired,
    #[schema(rename = "completed")]
    Completed,
    #[schema(rename = "failed")]
    Failed,
}

#[derive(ToSchema)]
#[schema(as = JobStatus)]
pub enum JobStatusName {
    #[schema(rename = "queued")]
    Queued,
    #[schema(rename = "awaiting_transfer")]
    AwaitingTransfer,
    #[schema(rename = "transferred")]
    Transferred,
    #[schema(rename = "loaded")]
    Loaded,
    #[schema(rename = "running")]
    Running,
    #[schema(rename = "completed")]
    Completed,
    #[schema(rename = "failed")]
    Failed,
    #[schema(rename = "cancelled")]
    Cancelled,
    #[schema(rename = "expired")]
    Expired,
}

#[derive(ToSchema)]
#[schema(as = JobKind)]
pub enum JobKindName {
    #[schema(rename = "request_readout")]
    RequestReadout,
    #[schema(rename = "auto_collection")]
    AutoCollection,
    #[schema(rename = "desk_readout")]
    DeskReadout,
}

#[derive(ToSchema)]
#[schema(as = Verdict)]
pub enum VerdictName {
    #[schema(rename = "approve")]
    Approve,
    #[schema(rename = "reject")]
    Reject,
}

/// What every route that reads a JSON body may also answer, from the body
/// extractor: the limit, the media type, and the body's own constraints.
const BODY_PROBLEMS: [(&str, &str); 4] = [
    ("400", "The body is not JSON of the expected shape"),
    ("413", "The body exceeds this route's size limit"),
    ("415", "The body is missing or not `application/json`"),
    ("422", "A field of the body violates its constraints"),
];

/// Completes the document built from the routes: every route with a JSON body
/// documents the extractor's answers, and OpenAPI requires a description on
/// every answer, so one that a route leaves without gets its status's reason
/// phrase.
pub fn complete(openapi: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::schema::{AdditionalProperties, Schema};
    use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
    // serde's `deny_unknown_fields` on a tagged enum applies to every variant,
    // which the derived schema does not say.
    if let Some(RefOr::T(Schema::OneOf(grants))) = openapi
        .components
        .as_mut()
        .and_then(|c| c.schemas.get_mut("TokenRequest"))
    {
        for grant in &mut grants.items {
            if let RefOr::T(Schema::Object(object)) = grant {
                object.additional_properties =
                    Some(Box::new(AdditionalProperties::FreeForm(false)));
            }
        }
    }
    // No text column can store U+0000, and bodies holding it are refused.
    if let Some(components) = openapi.components.as_mut() {
        for (name, schema) in &mut components.schemas {
            if name != "Problem" {
                forbid_nul(schema);
            }
        }
    }
    for item in openapi.paths.paths.values_mut() {
        for operation in [&mut item.put, &mut item.post, &mut item.patch]
            .into_iter()
            .flatten()
        {
            if operation.request_body.is_none() {
                continue;
            }
            for (status, description) in BODY_PROBLEMS {
                operation
                    .responses
                    .responses
                    .entry(status.to_owned())
                    .or_insert_with(|| {
                        RefOr::T(
                            ResponseBuilder::new()
                                .description(description)
                                .content(
                                    "application/problem+json",
                                    ContentBuilder::new()
                                        .schema(Some(Ref::from_schema_name("Problem")))
                                        .build(),
                                )
                                .build(),
                        )
                    });
            }
        }
    }
    for item in openapi.paths.paths.values_mut() {
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.options,
            &mut item.head,
            &mut item.patch,
            &mut item.trace,
        ];
        for operation in operations.into_iter().flatten() {
            for (status, response) in &mut operation.responses.responses {
                if let RefOr::T(response) = response
                    && response.description.is_empty()
                {
                    response.description = status
                        .parse::<u16>()
                        .ok()
                        .and_then(|s| actix_web::http::StatusCode::from_u16(s).ok())
                        .and_then(|s| s.canonical_reason())
                        .unwrap_or("Answer")
                        .to_owned();
                }
            }
        }
    }
}

/// Gives every free-text string (no pattern, format or enumeration) the pattern
/// that rules out U+0000.
fn forbid_nul(schema: &mut utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>) {
    use utoipa::openapi::RefOr;
    use utoipa::openapi::schema::{ArrayItems, Schema, SchemaType, Type};
    let RefOr::T(schema) = schema else {
        return;
    };
    match schema {
        Schema::Object(object) => {
            let is_string = match &object.schema_type {
                SchemaType::Type(Type::String) => true,
                SchemaType::Array(types) => types.contains(&Type::String),
                _ => false,
            };
            if is_string
                && object.pattern.is_none()
                && object.format.is_none()
                && object.enum_values.is_none()
            {
                object.pattern = Some(r"^[^\u0000]*$".to_owned());
            }
            for property in object.properties.values_mut() {
                forbid_nul(property);
            }
        }
        Schema::Array(array) => {
            if let ArrayItems::RefOrSchema(items) = &mut array.items {
                forbid_nul(items);
            }
        }
        Schema::OneOf(one_of) => one_of.items.iter_mut().for_each(forbid_nul),
        Schema::AllOf(all_of) => all_of.items.iter_mut().for_each(forbid_nul),
        Schema::AnyOf(any_of) => any_of.items.iter_mut().for_each(forbid_nul),
        _ => {}
    }
}

/// What a history verification found (`countersign_domain::history::Status`).
#[derive(ToSchema)]
#[schema(as = VerificationStatus)]
pub enum VerificationStatusName {
    /// Every hash, link and checkpoint holds.
    #[schema(rename = "valid")]
    Valid,
    /// An entry does not match its hash or its predecessor, entries are
    /// missing between others, or the head disagrees.
    #[schema(rename = "broken_chain")]
    BrokenChain,
    /// A checkpoint names an entry that is gone: the chain was cut short.
    #[schema(rename = "truncated")]
    Truncated,
    /// A checkpoint's entry has another hash than was signed.
    #[schema(rename = "rewritten")]
    Rewritten,
    /// A checkpoint's signature does not hold.
    #[schema(rename = "bad_signature")]
    BadSignature,
    /// A checkpoint names a key that is neither current nor retired.
    #[schema(rename = "unknown_key")]
    UnknownKey,
    /// Entries older than the signing interval (60 s) and its grace (10 min)
    /// are covered by no checkpoint.
    #[schema(rename = "unsigned_stretch")]
    UnsignedStretch,
}
