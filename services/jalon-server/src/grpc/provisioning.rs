//! `jalon.v1.ProvisioningService`: an organisation's provisioning tokens
//! (for its identity provider's SCIM client) and group-to-role mappings.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use jalon_core::{
    Error, Result,
    authz::Action,
    scim::{GroupName, parse_mapped_role},
    values::DisplayName,
};
use jalon_proto::v1::{self as pb, provisioning_service_server::ProvisioningService};
use jalon_store::{
    Store,
    provisioning::{self, Mapping, Token},
};
use tonic::{Request, Response, Status};

use super::{authorise, caller, conversions as conv, requester};
use crate::error::OrStatus;

/// The handlers of `ProvisioningService`.
#[derive(Clone)]
pub struct ProvisioningApi {
    pub store: Store,
}

/// Random bytes in a provisioning secret (256 bits).
const SECRET_BYTES: usize = 32;

fn random_part() -> Result<String> {
    let mut bytes = [0_u8; SECRET_BYTES];
    getrandom::fill(&mut bytes)
        .map_err(|e| Error::Internal(format!("no randomness for a secret: {e}")))?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

fn token_to_proto(t: Token) -> pb::ProvisioningToken {
    pb::ProvisioningToken {
        id: t.id.to_string(),
        organisation_id: t.organisation_id.to_string(),
        display_name: t.display_name,
        created_by: t.created_by,
        create_time: Some(conv::timestamp(t.create_time)),
        last_used_time: t.last_used_time.map(conv::timestamp),
        revoke_time: t.revoke_time.map(conv::timestamp),
    }
}

fn mapping_to_proto(m: Mapping) -> pb::GroupRoleMapping {
    pb::GroupRoleMapping {
        group_name: m.group_name,
        role: conv::role_to_proto(m.role) as i32,
        create_time: Some(conv::timestamp(m.create_time)),
        update_time: Some(conv::timestamp(m.update_time)),
    }
}

fn group_name(field: &str, raw: &str) -> Result<GroupName> {
    GroupName::parse(raw).map_err(|e| Error::invalid(field, e))
}

fn count(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

#[tonic::async_trait]
impl ProvisioningService for ProvisioningApi {
    #[tracing::instrument(skip_all)]
    async fn create_provisioning_token(
        &self,
        request: Request<pb::CreateProvisioningTokenRequest>,
    ) -> Result<Response<pb::CreateProvisioningTokenResponse>, Status> {
        let caller = caller(&request)?;
        let req = request.into_inner();
        let org = conv::id("organisation_id", &req.organisation_id).or_status()?;
        let name = DisplayName::parse(&req.display_name)
            .map_err(|e| Error::invalid("display_name", e))
            .or_status()?;
        let random = random_part().or_status()?;
        let (token, secret) =
            provisioning::create_token(self.store.db(), org, &requester(&caller), &name, &random)
                .await
                .or_status()?;
        tracing::info!(organisation_id = %org, token_id = %token.id, "provisioning token created");
        Ok(Response::new(pb::CreateProvisioningTokenResponse {
            token: Some(token_to_proto(token)),
            secret,
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn list_provisioning_tokens(
        &self,
        request: Request<pb::ListProvisioningTokensRequest>,
    ) -> Result<Response<pb::ListProvisioningTokensResponse>, Status> {
        let caller = caller(&request)?;
        let org = conv::id("organisation_id", &request.get_ref().organisation_id).or_status()?;
        authorise(&self.store, &caller, Action::ListProvisioningTokens, org)
            .await
            .or_status()?;
        let tokens = provisioning::list_tokens(self.store.db(), org)
            .await
            .or_status()?;
        Ok(Response::new(pb::ListProvisioningTokensResponse {
            tokens: tokens.into_iter().map(token_to_proto).collect(),
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn revoke_provisioning_token(
        &self,
        request: Request<pb::RevokeProvisioningTokenRequest>,
    ) -> Result<Response<pb::RevokeProvisioningTokenResponse>, Status> {
        let caller = caller(&request)?;
        let req = request.get_ref();
        let org = conv::id("organisation_id", &req.organisation_id).or_status()?;
        let id = conv::id("id", &req.id).or_status()?;
        let token = provisioning::revoke_token(self.store.db(), org, &requester(&caller), id)
            .await
            .or_status()?;
        tracing::info!(organisation_id = %org, token_id = %id, "provisioning token revoked");
        Ok(Response::new(pb::RevokeProvisioningTokenResponse {
            token: Some(token_to_proto(token)),
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn set_group_role_mapping(
        &self,
        request: Request<pb::SetGroupRoleMappingRequest>,
    ) -> Result<Response<pb::SetGroupRoleMappingResponse>, Status> {
        let caller = caller(&request)?;
        let req = request.get_ref();
        let org = conv::id("organisation_id", &req.organisation_id).or_status()?;
        let mapping = conv::required("mapping", req.mapping.as_ref()).or_status()?;
        let name = group_name("mapping.group_name", &mapping.group_name).or_status()?;
        let role = conv::role_from_proto(mapping.role)
            .map_err(|e| Error::invalid("mapping.role", e))
            .and_then(|r| r.ok_or_else(|| Error::invalid("mapping.role", "is required")))
            .and_then(|r| {
                parse_mapped_role(r).map_err(|_| {
                    Error::invalid(
                        "mapping.role",
                        "INTEGRATION is given by an ADMIN, not by a group: map groups to ADMIN, DIRECTOR, MEMBER or VIEWER",
                    )
                })
            })
            .or_status()?;
        let (stored, changed) =
            provisioning::set_mapping(self.store.db(), org, &requester(&caller), &name, role)
                .await
                .or_status()?;
        tracing::info!(organisation_id = %org, group = %name.as_str(), role = %role, changed, "group role mapping set");
        Ok(Response::new(pb::SetGroupRoleMappingResponse {
            mapping: Some(mapping_to_proto(stored)),
            roles_changed: count(changed),
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn list_group_role_mappings(
        &self,
        request: Request<pb::ListGroupRoleMappingsRequest>,
    ) -> Result<Response<pb::ListGroupRoleMappingsResponse>, Status> {
        let caller = caller(&request)?;
        let org = conv::id("organisation_id", &request.get_ref().organisation_id).or_status()?;
        authorise(&self.store, &caller, Action::ListGroupRoleMappings, org)
            .await
            .or_status()?;
        let mappings = provisioning::list_mappings(self.store.db(), org)
            .await
            .or_status()?;
        Ok(Response::new(pb::ListGroupRoleMappingsResponse {
            mappings: mappings.into_iter().map(mapping_to_proto).collect(),
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn delete_group_role_mapping(
        &self,
        request: Request<pb::DeleteGroupRoleMappingRequest>,
    ) -> Result<Response<pb::DeleteGroupRoleMappingResponse>, Status> {
        let caller = caller(&request)?;
        let req = request.get_ref();
        let org = conv::id("organisation_id", &req.organisation_id).or_status()?;
        let name = group_name("group_name", &req.group_name).or_status()?;
        let changed =
            provisioning::delete_mapping(self.store.db(), org, &requester(&caller), &name)
                .await
                .or_status()?;
        Ok(Response::new(pb::DeleteGroupRoleMappingResponse {
            roles_changed: count(changed),
        }))
    }
}
