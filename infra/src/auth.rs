//! Logins for every grant type, refresh-token rotation with reuse detection,
//! token verification and revocation.

use std::net::IpAddr;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use countersign_domain::auth::{
    AttemptLimit, Grant, REFRESH_TOKEN_TTL_SECS, Session, TokenSet, access_token_expiry,
    pin_change_limits,
};
use countersign_domain::directory::check_pin;
use countersign_domain::history::{Action, NewEntry, names};
use countersign_domain::permission::{Principal, PrincipalKind};
use countersign_domain::ports::{Auth, Clock, Me};
use countersign_domain::role::RoleSet;
use countersign_domain::tenant::{Tenant, TenantId, TenantStatus};
use countersign_domain::{Error, ErrorCode, Result};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseConnection, DatabaseTransaction, EntityTrait,
    QueryFilter, Set, TransactionTrait,
};
use serde_json::json;
use uuid::Uuid;

use crate::change::{Change, Outlets};
use crate::db::DbResult;
use crate::entities::{agents, api_keys, employees, programming_keys, refresh_tokens, tenants};
use crate::history::actor_of;
use crate::programming_keys::{roles_of, to_domain as key_to_domain};
use crate::revocation::{Revocation, RevocationList};
use crate::secrets;
use crate::store::{tenant_transaction, transaction_with};
use crate::tenants::{by_slug, to_domain as tenant_to_domain};
use crate::throttle::{Attempt, LoginThrottle};
use crate::tokens::{AUDIENCE, Claims, ISSUER, TokenKeys};

/// The settings that let a login see the one row of the credential it
/// presents before its tenant is known.
const AGENT_LOGIN: &str = "countersign.agent_id";
const REFRESH_LOGIN: &str = "countersign.refresh_token_hash";

pub struct AuthService {
    db: DatabaseConnection,
    clock: Arc<dyn Clock>,
    keys: TokenKeys,
    revocations: Arc<RevocationList>,
    throttle: LoginThrottle,
    operator_key_digest: String,
}

fn invalid_credentials() -> Error {
    Error::rule(
        ErrorCode::InvalidCredentials,
        "the credentials are not valid",
    )
}

/// The `grant_type` of `POST /v1/auth/token`.
fn grant_type(grant: &Grant) -> &'static str {
    match grant {
        Grant::ProgrammingKey { .. } => "programming_key",
        Grant::ApiKey { .. } => "api_key",
        Grant::Agent { .. } => "agent",
        Grant::Operator { .. } => "operator",
        Grant::RefreshToken { .. } => "refresh_token",
    }
}

fn unauthorized() -> Error {
    Error::rule(ErrorCode::Unauthorized, "a valid access token is required")
}

/// What a successful credential check grants, before it becomes a token.
struct Grantee {
    kind: PrincipalKind,
    id: Uuid,
    tenant: Option<tenants::Model>,
    roles: RoleSet,
    generation: i64,
    valid_until: Option<DateTime<Utc>>,
    pin_change: bool,
    /// People get a refresh token; `Some(family)` continues a family.
    refresh: Option<Option<Uuid>>,
}

impl AuthService {
    pub fn new(
        db: DatabaseConnection,
        clock: Arc<dyn Clock>,
        keys: TokenKeys,
        revocations: Arc<RevocationList>,
        throttle: LoginThrottle,
        operator_key_digest: String,
    ) -> Self {
        Self {
            db,
            clock,
            keys,
            revocations,
            throttle,
            operator_key_digest,
        }
    }

    /// Where the effects of a login or a holder's PIN change go.
    fn outlets(&self) -> Outlets<'_> {
        Outlets {
            revocations: &self.revocations,
            signal: None,
            public_url: "",
        }
    }

    /// A transaction in the tenant of a principal; the operator has none.
    async fn begin_for(&self, t: Option<TenantId>) -> Result<DatabaseTransaction> {
        match t {
            Some(t) => tenant_transaction(&self.db, t).await,
            None => self.db.begin().await.db(),
        }
    }

    async fn check(&self, grant: &Grant) -> Result<Option<Grantee>> {
        match grant {
            Grant::ProgrammingKey {
                tenant,
                marking,
                pin,
            } => self.check_programming_key(tenant, marking, pin).await,
            Grant::ApiKey { tenant, api_key } => self.check_api_key(tenant, api_key).await,
            Grant::Agent { agent_id, secret } => self.check_agent(*agent_id, secret).await,
            Grant::Operator { operator_key } => Ok((secrets::digest(operator_key)
                == self.operator_key_digest)
                .then(|| Grantee {
                    kind: PrincipalKind::Operator,
                    id: Uuid::nil(),
                    tenant: None,
                    roles: RoleSet::default(),
                    generation: 0,
                    valid_until: None,
                    pin_change: false,
                    refresh: None,
                })),
            Grant::RefreshToken { refresh_token } => self.check_refresh(refresh_token).await,
        }
    }

    async fn check_programming_key(
        &self,
        slug: &str,
        marking: &str,
        pin: &str,
    ) -> Result<Option<Grantee>> {
        let tenant = by_slug(&self.db, slug).await?;
        let row = match &tenant {
            Some(t) => {
                let txn = tenant_transaction(&self.db, TenantId(t.id)).await?;
                let row = programming_keys::Entity::find()
                    .filter(programming_keys::Column::TenantId.eq(t.id))
                    .filter(programming_keys::Column::Marking.eq(marking))
                    .one(&txn)
                    .await
                    .db()?;
                txn.commit().await.db()?;
                row
            }
            None => None,
        };
        let pin_ok =
            secrets::verify_pin(pin, row.as_ref().and_then(|r| r.pin_hash.as_deref())).await;
        let (Some(tenant), Some(row), true) = (tenant, row, pin_ok) else {
            return Ok(None);
        };
        self.programming_key_grantee(tenant, row, None)
    }

    fn programming_key_grantee(
        &self,
        tenant: tenants::Model,
        row: programming_keys::Model,
        family: Option<Uuid>,
    ) -> Result<Option<Grantee>> {
        let key = key_to_domain(&row)?;
        if tenant.status != TenantStatus::Active || key.login_refusal(self.clock.now()).is_some() {
            return Ok(None);
        }
        Ok(Some(Grantee {
            kind: PrincipalKind::User,
            id: key.id,
            tenant: Some(tenant),
            roles: key.roles,
            generation: row.token_generation,
            valid_until: key.valid_until,
            pin_change: row.pin_one_time,
            refresh: (!row.pin_one_time).then_some(family),
        }))
    }

    async fn check_api_key(&self, slug: &str, api_key: &str) -> Result<Option<Grantee>> {
        let Some(tenant) = by_slug(&self.db, slug).await? else {
            return Ok(None);
        };
        let txn = tenant_transaction(&self.db, TenantId(tenant.id)).await?;
        let row = api_keys::Entity::find()
            .filter(api_keys::Column::TenantId.eq(tenant.id))
            .filter(api_keys::Column::KeyHash.eq(secrets::digest(api_key)))
            .one(&txn)
            .await
            .db()?;
        txn.commit().await.db()?;
        let Some(row) = row.filter(|_| tenant.status == TenantStatus::Active) else {
            return Ok(None);
        };
        Ok(Some(Grantee {
            kind: PrincipalKind::Webservice,
            id: row.id,
            roles: roles_of(&row.roles)?,
            tenant: Some(tenant),
            generation: row.token_generation,
            valid_until: None,
            pin_change: false,
            refresh: None,
        }))
    }

    async fn check_agent(&self, agent_id: Uuid, secret: &str) -> Result<Option<Grantee>> {
        // Before the tenant is known, the agent's own row is all it may see.
        let txn = transaction_with(&self.db, AGENT_LOGIN, &agent_id.to_string()).await?;
        let row = agents::Entity::find_by_id(agent_id).one(&txn).await.db()?;
        txn.commit().await.db()?;
        let Some(row) = row else {
            return Ok(None);
        };
        if row.secret_hash != secrets::digest(secret) {
            return Ok(None);
        }
        let tenant = tenants::Entity::find_by_id(row.tenant_id)
            .one(&self.db)
            .await
            .db()?;
        let Some(tenant) = tenant.filter(|t| t.status == TenantStatus::Active) else {
            return Ok(None);
        };
        Ok(Some(Grantee {
            kind: PrincipalKind::Agent,
            id: row.id,
            tenant: Some(tenant),
            roles: RoleSet::default(),
            generation: row.token_generation,
            valid_until: None,
            pin_change: false,
            refresh: None,
        }))
    }

    /// Spends a refresh token. A token spent before revokes its whole family.
    async fn check_refresh(&self, token: &str) -> Result<Option<Grantee>> {
        let now = self.clock.now();
        let hash = secrets::digest(token);
        // Before the tenant is known, the presented token's row is all it may see.
        let txn = transaction_with(&self.db, REFRESH_LOGIN, &hash).await?;
        let row = refresh_tokens::Entity::find()
            .filter(refresh_tokens::Column::TokenHash.eq(hash))
            .one(&txn)
            .await
            .db()?;
        txn.commit().await.db()?;
        let Some(row) = row else {
            return Ok(None);
        };
        if row.revoked || row.expires_at <= now {
            return Ok(None);
        }
        let t = TenantId(row.tenant_id);
        let txn = tenant_transaction(&self.db, t).await?;
        let spent = refresh_tokens::Entity::update_many()
            .col_expr(refresh_tokens::Column::UsedAt, Expr::value(now))
            .filter(refresh_tokens::Column::Id.eq(row.id))
            .filter(refresh_tokens::Column::UsedAt.is_null())
            .exec(&txn)
            .await
            .db()?;
        txn.commit().await.db()?;
        if spent.rows_affected != 1 {
            tracing::warn!(family = %row.family_id, "a spent refresh token was presented again; revoking its family");
            self.revoke_family(t, row.family_id).await?;
            return Ok(None);
        }
        let tenant = tenants::Entity::find_by_id(row.tenant_id)
            .one(&self.db)
            .await
            .db()?;
        let txn = tenant_transaction(&self.db, t).await?;
        let key = programming_keys::Entity::find_by_id(row.programming_key_id)
            .one(&txn)
            .await
            .db()?;
        txn.commit().await.db()?;
        let (Some(tenant), Some(key)) = (tenant, key) else {
            return Ok(None);
        };
        if key.token_generation != row.generation {
            return Ok(None);
        }
        self.programming_key_grantee(tenant, key, Some(row.family_id))
    }

    async fn revoke_family(&self, t: TenantId, family: Uuid) -> Result<()> {
        let txn = tenant_transaction(&self.db, t).await?;
        refresh_tokens::Entity::update_many()
            .col_expr(refresh_tokens::Column::Revoked, Expr::value(true))
            .filter(refresh_tokens::Column::FamilyId.eq(family))
            .exec(&txn)
            .await
            .db()?;
        let entries = [Revocation::family(family, self.clock.now())];
        self.revocations.record(&txn, &entries).await?;
        txn.commit().await.db()?;
        self.revocations.publish(&entries).await;
        Ok(())
    }

    async fn issue(&self, grantee: Grantee, grant_type: &str) -> Result<TokenSet> {
        let now = self.clock.now();
        let txn = self
            .begin_for(grantee.tenant.as_ref().map(|t| TenantId(t.id)))
            .await?;
        let expires = access_token_expiry(now, grantee.valid_until);
        let family = grantee
            .refresh
            .map(|family| family.unwrap_or_else(Uuid::now_v7));
        let tenant_id = grantee.tenant.as_ref().map(|t| t.id);
        let claims = Claims {
            iss: ISSUER.to_owned(),
            aud: AUDIENCE.to_owned(),
            sub: grantee.id,
            tid: tenant_id,
            roles: grantee.roles.iter().collect(),
            kind: grantee.kind,
            jti: Uuid::now_v7(),
            iat: now.timestamp(),
            nbf: now.timestamp(),
            exp: expires.timestamp(),
            generation: grantee.generation,
            tgen: grantee.tenant.as_ref().map_or(0, |t| t.token_generation),
            sid: family,
            pin_change: grantee.pin_change,
        };
        let access_token = self.keys.issue(&claims)?;
        let refresh_token = match (family, tenant_id) {
            (Some(family), Some(tenant_id)) => {
                let token = secrets::new_secret("csr");
                refresh_tokens::ActiveModel {
                    id: Set(Uuid::now_v7()),
                    family_id: Set(family),
                    tenant_id: Set(tenant_id),
                    programming_key_id: Set(grantee.id),
                    token_hash: Set(secrets::digest(&token)),
                    generation: Set(grantee.generation),
                    expires_at: Set(now + Duration::seconds(REFRESH_TOKEN_TTL_SECS)),
                    used_at: Set(None),
                    revoked: Set(false),
                    created_at: Set(now),
                }
                .insert(&txn)
                .await
                .db()?;
                Some(token)
            }
            _ => None,
        };
        if let Some(tenant_id) = tenant_id {
            let subject = match grantee.kind {
                PrincipalKind::Webservice => names::API_KEY,
                PrincipalKind::Agent => names::AGENT,
                _ => names::PROGRAMMING_KEY,
            };
            let mut details = json!({"grant_type": grant_type});
            if grantee.kind == PrincipalKind::User {
                details["pin_change_required"] = json!(grantee.pin_change);
            }
            let by = Principal {
                kind: grantee.kind,
                id: grantee.id,
                tenant_id: Some(TenantId(tenant_id)),
                roles: grantee.roles.clone(),
                pin_change_only: grantee.pin_change,
            };
            let entry = NewEntry::new(Action::Login, subject, grantee.id, details);
            let actor = actor_of(&txn, &by).await?;
            let mut change = Change::over(txn, TenantId(tenant_id), actor, now);
            change.record(entry);
            change.commit(self.outlets()).await?;
        } else {
            txn.commit().await.db()?;
        }
        Ok(TokenSet {
            access_token,
            expires_in: (expires - now).num_seconds().max(0),
            refresh_token,
            roles: grantee.roles.names(),
            pin_change_required: grantee.pin_change,
        })
    }

    /// Counts an attempt before its credential is checked; 429 when a limit is spent.
    async fn attempt(&self, limits: &[AttemptLimit]) -> Result<Attempt> {
        self.throttle
            .reserve(limits)
            .await
            .map_err(|retry_after_secs| Error::Throttled { retry_after_secs })
    }

    async fn tenant_of(&self, session: &Session) -> Result<Option<Tenant>> {
        match session.principal.tenant_id {
            Some(t) => {
                let row = tenants::Entity::find_by_id(t.0).one(&self.db).await.db()?;
                row.map(tenant_to_domain).transpose()
            }
            None => Ok(None),
        }
    }
}

#[async_trait::async_trait]
impl Auth for AuthService {
    async fn token(&self, grant: Grant, client: IpAddr) -> Result<TokenSet> {
        let attempt = self.attempt(&grant.attempt_limits(client)).await?;
        match self.check(&grant).await {
            Ok(Some(grantee)) => {
                self.throttle.release(attempt).await;
                self.issue(grantee, grant_type(&grant)).await
            }
            // The attempt stays counted until its window ends.
            Ok(None) => Err(invalid_credentials()),
            Err(err) => {
                self.throttle.release(attempt).await;
                Err(err)
            }
        }
    }

    async fn authenticate(&self, bearer: &str) -> Result<Session> {
        let claims = self.keys.verify(bearer).ok_or_else(unauthorized)?;
        let tenant_scoped = claims.kind != PrincipalKind::Operator;
        if tenant_scoped != claims.tid.is_some() {
            return Err(unauthorized());
        }
        let session = Session {
            principal: Principal {
                kind: claims.kind,
                id: claims.sub,
                tenant_id: claims.tid.map(TenantId),
                roles: claims.roles.into_iter().collect(),
                pin_change_only: claims.pin_change,
            },
            token_id: claims.jti,
            generation: claims.generation,
            tenant_generation: claims.tgen,
            family: claims.sid,
            expires_at: DateTime::from_timestamp(claims.exp, 0).unwrap_or_default(),
        };
        if self.revocations.is_revoked(&session).await? {
            return Err(unauthorized());
        }
        Ok(session)
    }

    async fn revoke(&self, session: &Session) -> Result<()> {
        let txn = self.begin_for(session.principal.tenant_id).await?;
        let mut entries = vec![Revocation::token(session.token_id, session.expires_at)];
        if let Some(family) = session.family {
            refresh_tokens::Entity::update_many()
                .col_expr(refresh_tokens::Column::Revoked, Expr::value(true))
                .filter(refresh_tokens::Column::FamilyId.eq(family))
                .exec(&txn)
                .await
                .db()?;
            entries.push(Revocation::family(family, self.clock.now()));
        }
        let p = &session.principal;
        let Some(t) = p.tenant_id else {
            self.revocations.record(&txn, &entries).await?;
            txn.commit().await.db()?;
            self.revocations.publish(&entries).await;
            return Ok(());
        };
        let subject = match p.kind {
            PrincipalKind::Webservice => names::API_KEY,
            PrincipalKind::Agent => names::AGENT,
            _ => names::PROGRAMMING_KEY,
        };
        let actor = actor_of(&txn, p).await?;
        let mut change = Change::over(txn, t, actor, self.clock.now());
        let details = json!({"token_id": session.token_id, "refresh_family": session.family});
        change.record(NewEntry::new(Action::Logout, subject, p.id, details));
        change.revoke(entries);
        change.commit(self.outlets()).await
    }

    async fn me(&self, session: &Session) -> Result<Me> {
        let p = &session.principal;
        let tenant = self.tenant_of(session).await?;
        let txn = self.begin_for(p.tenant_id).await?;
        let mut hold_until = None;
        let (name, employee_id) = match p.kind {
            PrincipalKind::User => {
                let key = programming_keys::Entity::find_by_id(p.id)
                    .one(&txn)
                    .await
                    .db()?
                    .ok_or_else(unauthorized)?;
                let employee = match key.employee_id {
                    Some(id) => employees::Entity::find_by_id(id).one(&txn).await.db()?,
                    None => None,
                };
                hold_until = key.hold_until.filter(|until| *until > self.clock.now());
                (employee.map_or(key.name, |e| e.name), key.employee_id)
            }
            PrincipalKind::Webservice => {
                let key = api_keys::Entity::find_by_id(p.id)
                    .one(&txn)
                    .await
                    .db()?
                    .ok_or_else(unauthorized)?;
                (key.name, None)
            }
            PrincipalKind::Agent => {
                let agent = agents::Entity::find_by_id(p.id)
                    .one(&txn)
                    .await
                    .db()?
                    .ok_or_else(unauthorized)?;
                (agent.name, None)
            }
            PrincipalKind::Operator => ("Operator".to_owned(), None),
        };
        txn.commit().await.db()?;
        Ok(Me {
            kind: p.kind,
            id: p.id,
            name,
            tenant,
            roles: p.roles.clone(),
            employee_id,
            pin_change_required: p.pin_change_only,
            hold_until,
        })
    }

    async fn set_own_pin(
        &self,
        session: &Session,
        current_pin: &str,
        new_pin: &str,
        client: IpAddr,
    ) -> Result<()> {
        if session.principal.kind != PrincipalKind::User {
            return Err(Error::rule(
                ErrorCode::Forbidden,
                "only a programming key has a PIN",
            ));
        }
        check_pin(new_pin)?;
        if new_pin == current_pin {
            return Err(Error::invalid(
                "the new PIN must differ from the current one",
            ));
        }
        let txn = self.begin_for(session.principal.tenant_id).await?;
        let row = programming_keys::Entity::find_by_id(session.principal.id)
            .one(&txn)
            .await
            .db()?
            .ok_or_else(unauthorized)?;
        txn.commit().await.db()?;
        let attempt = self.attempt(&pin_change_limits(row.id, client)).await?;
        if !secrets::verify_pin(current_pin, row.pin_hash.as_deref()).await {
            return Err(Error::rule(
                ErrorCode::InvalidCredentials,
                "the current PIN is not correct",
            ));
        }
        self.throttle.release(attempt).await;
        let hash = secrets::hash_pin(new_pin).await?;
        let now = self.clock.now();
        let txn = self.begin_for(session.principal.tenant_id).await?;
        let generation = row.token_generation + 1;
        let id = row.id;
        let mut active: programming_keys::ActiveModel = row.into();
        active.pin_hash = Set(Some(hash));
        active.pin_one_time = Set(false);
        active.token_generation = Set(generation);
        active.updated_at = Set(now);
        active.update(&txn).await.db()?;
        let t = session.principal.tenant_id.ok_or_else(unauthorized)?;
        let actor = actor_of(&txn, &session.principal).await?;
        let mut change = Change::over(txn, t, actor, now);
        change.record(NewEntry::new(
            Action::ProgrammingKeyPinSet,
            names::PROGRAMMING_KEY,
            id,
            json!({"one_time": false, "by_holder": true}),
        ));
        change.revoke([Revocation::credential(id, generation, now)]);
        change.commit(self.outlets()).await
    }
}
