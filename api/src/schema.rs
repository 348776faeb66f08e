//! What the derived OpenAPI document cannot say by itself: the role subsets
//! that credentials may hold, and the answers every route with a body shares.
//! Bodies carry the domain types themselves, which derive their schemas
//! (feature `openapi` of the domain crate).

use std::borrow::Cow;

use countersign_domain::role::{Role, RoleSet};
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ObjectBuilder, Schema, SchemaType, Type};
use utoipa::{PartialSchema, ToSchema};

/// The roles of [`Role::ALL`] that `allowed` admits, as a string enumeration.
fn roles_where(allowed: impl Fn(Role) -> bool, description: &str) -> RefOr<Schema> {
    let names = Role::ALL
        .iter()
        .copied()
        .filter(|r| allowed(*r))
        .map(Role::as_str);
    ObjectBuilder::new()
        .schema_type(SchemaType::Type(Type::String))
        .description(Some(description))
        .enum_values(Some(names))
        .into()
}

/// A role a programming key may hold (the rule of
/// [`RoleSet::for_programming_key`]).
pub struct ProgrammingKeyRole;

impl PartialSchema for ProgrammingKeyRole {
    fn schema() -> RefOr<Schema> {
        roles_where(
            |role| RoleSet::for_programming_key([role]).is_ok(),
            "A role a programming key may hold: every tenant role but `webservice`.",
        )
    }
}

impl ToSchema for ProgrammingKeyRole {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("ProgrammingKeyRole")
    }
}

/// A role a webservice credential may carry (the rule of
/// [`RoleSet::for_webservice`]).
pub struct WebserviceRole;

impl PartialSchema for WebserviceRole {
    fn schema() -> RefOr<Schema> {
        roles_where(
            |role| RoleSet::for_webservice([role]).is_ok(),
            "A role a webservice credential may carry: never `approver` or\n`super_administrator`; `webservice` is always added.",
        )
    }
}

impl ToSchema for WebserviceRole {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("WebserviceRole")
    }
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
