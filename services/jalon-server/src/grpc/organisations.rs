//! `jalon.v1.OrganisationService`.

use jalon_core::{
    Error, Result,
    authz::{Action, Standing, authorize},
    values::{DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, parse_page_size},
};
use jalon_proto::v1::{self as pb, organisation_service_server::OrganisationService};
use jalon_store::{Store, organisations, page};
use tonic::{Request, Response, Status};

use super::{authorise, caller, conversions as conv, requester};
use crate::error::OrStatus;

/// The handlers of `OrganisationService`.
#[derive(Clone)]
pub struct OrganisationApi {
    pub store: Store,
}

#[tonic::async_trait]
impl OrganisationService for OrganisationApi {
    #[tracing::instrument(skip_all)]
    async fn create_organisation(
        &self,
        request: Request<pb::CreateOrganisationRequest>,
    ) -> Result<Response<pb::CreateOrganisationResponse>, Status> {
        let caller = caller(&request)?;
        let standing = Standing {
            platform_admin: caller.platform_admin,
            role: None,
        };
        authorize(Action::CreateOrganisation, standing, "organisation")
            .map_err(|_| {
                Error::PermissionDenied("only platform administrators create organisations".into())
            })
            .or_status()?;
        let req = request.into_inner();
        let organisation = conv::required("organisation", req.organisation.as_ref()).or_status()?;
        let admin = conv::required("initial_admin", req.initial_admin.as_ref()).or_status()?;
        let new = conv::new_organisation(organisation);
        let new_admin =
            conv::new_person(admin, "initial_admin", Some(jalon_core::authz::Role::Admin));
        let (new, new_admin) = merge(new, new_admin).or_status()?;
        let key = conv::idempotency_key(
            format!("organisations:{}", caller.subject),
            &req.request_id,
            &pb::CreateOrganisationRequest {
                request_id: String::new(),
                ..req.clone()
            },
        )
        .or_status()?;
        let (organisation, admin) = organisations::create(
            self.store.db(),
            &requester(&caller),
            &new,
            &new_admin,
            key.as_ref(),
        )
        .await
        .or_status()?;
        tracing::info!(organisation_id = %organisation.id, "organisation created");
        Ok(Response::new(pb::CreateOrganisationResponse {
            organisation: Some(conv::organisation_to_proto(organisation)),
            initial_admin: Some(conv::person_to_proto(admin)),
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn get_organisation(
        &self,
        request: Request<pb::GetOrganisationRequest>,
    ) -> Result<Response<pb::GetOrganisationResponse>, Status> {
        let caller = caller(&request)?;
        let id = conv::id("id", &request.get_ref().id).or_status()?;
        authorise(&self.store, &caller, Action::GetOrganisation, id)
            .await
            .or_status()?;
        let organisation = organisations::get(self.store.db(), id).await.or_status()?;
        Ok(Response::new(pb::GetOrganisationResponse {
            organisation: Some(conv::organisation_to_proto(organisation)),
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn list_organisations(
        &self,
        request: Request<pb::ListOrganisationsRequest>,
    ) -> Result<Response<pb::ListOrganisationsResponse>, Status> {
        let caller = caller(&request)?;
        let req = request.into_inner();
        let size = parse_page_size(req.page_size, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
            .map_err(|d| Error::invalid("page_size", d))
            .or_status()?;
        let filter = format!("show_deleted={}", req.show_deleted);
        let after = page::decode(&req.page_token, &filter, "page_token").or_status()?;
        let visibility = if caller.platform_admin {
            organisations::Visibility::All
        } else {
            organisations::Visibility::MemberOf(caller.subject.clone())
        };
        let page = organisations::list(
            self.store.db(),
            &visibility,
            req.show_deleted,
            size,
            after,
            &filter,
        )
        .await
        .or_status()?;
        Ok(Response::new(pb::ListOrganisationsResponse {
            organisations: page
                .items
                .into_iter()
                .map(conv::organisation_to_proto)
                .collect(),
            next_page_token: page.next_page_token,
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn update_organisation(
        &self,
        request: Request<pb::UpdateOrganisationRequest>,
    ) -> Result<Response<pb::UpdateOrganisationResponse>, Status> {
        let caller = caller(&request)?;
        let req = request.into_inner();
        let organisation = conv::required("organisation", req.organisation.as_ref()).or_status()?;
        let id = conv::id("organisation.id", &organisation.id).or_status()?;
        let patch = conv::organisation_patch(organisation, req.update_mask.as_ref()).or_status()?;
        let updated = organisations::update(
            self.store.db(),
            id,
            &organisation.etag,
            &requester(&caller),
            &patch,
        )
        .await
        .or_status()?;
        Ok(Response::new(pb::UpdateOrganisationResponse {
            organisation: Some(conv::organisation_to_proto(updated)),
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn delete_organisation(
        &self,
        request: Request<pb::DeleteOrganisationRequest>,
    ) -> Result<Response<pb::DeleteOrganisationResponse>, Status> {
        let caller = caller(&request)?;
        let req = request.into_inner();
        let id = conv::id("id", &req.id).or_status()?;
        authorise(&self.store, &caller, Action::DeleteOrganisation, id)
            .await
            .or_status()?;
        let deleted =
            organisations::set_deleted(self.store.db(), id, &req.etag, &requester(&caller), true)
                .await
                .or_status()?;
        tracing::info!(organisation_id = %id, "organisation deleted");
        Ok(Response::new(pb::DeleteOrganisationResponse {
            organisation: Some(conv::organisation_to_proto(deleted)),
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn undelete_organisation(
        &self,
        request: Request<pb::UndeleteOrganisationRequest>,
    ) -> Result<Response<pb::UndeleteOrganisationResponse>, Status> {
        let caller = caller(&request)?;
        let req = request.into_inner();
        let id = conv::id("id", &req.id).or_status()?;
        authorise(&self.store, &caller, Action::UndeleteOrganisation, id)
            .await
            .or_status()?;
        let restored =
            organisations::set_deleted(self.store.db(), id, &req.etag, &requester(&caller), false)
                .await
                .or_status()?;
        tracing::info!(organisation_id = %id, "organisation undeleted");
        Ok(Response::new(pb::UndeleteOrganisationResponse {
            organisation: Some(conv::organisation_to_proto(restored)),
        }))
    }
}

/// Both parses, reporting the violations of both at once.
fn merge<A, B>(a: Result<A>, b: Result<B>) -> Result<(A, B)> {
    match (a, b) {
        (Ok(a), Ok(b)) => Ok((a, b)),
        (Err(Error::InvalidArgument(mut x)), Err(Error::InvalidArgument(y))) => {
            x.extend(y);
            Err(Error::InvalidArgument(x))
        }
        (Err(e), _) | (_, Err(e)) => Err(e),
    }
}
