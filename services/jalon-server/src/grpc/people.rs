//! `jalon.v1.PersonService`.

use jalon_core::{
    Error, Result,
    authz::Action,
    values::{DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, parse_page_size},
};
use jalon_proto::v1::{self as pb, person_service_server::PersonService};
use jalon_store::{
    Store, page,
    people::{self, PersonFilter},
};
use tonic::{Request, Response, Status};

use super::{authorise, caller, conversions as conv, requester};
use crate::error::OrStatus;

/// The handlers of `PersonService`.
#[derive(Clone)]
pub struct PersonApi {
    pub store: Store,
}

fn person_response<T>(
    make: impl FnOnce(Option<pb::Person>) -> T,
    p: jalon_core::person::Person,
) -> Response<T> {
    Response::new(make(Some(conv::person_to_proto(p))))
}

#[tonic::async_trait]
impl PersonService for PersonApi {
    #[tracing::instrument(skip_all)]
    async fn create_person(
        &self,
        request: Request<pb::CreatePersonRequest>,
    ) -> Result<Response<pb::CreatePersonResponse>, Status> {
        let caller = caller(&request)?;
        let req = request.into_inner();
        let org = conv::id("organisation_id", &req.organisation_id).or_status()?;
        let person = conv::required("person", req.person.as_ref()).or_status()?;
        let new = conv::new_person(person, "person", None).or_status()?;
        let key = conv::idempotency_key(
            format!("people:{org}"),
            &req.request_id,
            &pb::CreatePersonRequest {
                request_id: String::new(),
                ..req.clone()
            },
        )
        .or_status()?;
        let created = people::create(
            self.store.db(),
            org,
            &requester(&caller),
            &new,
            key.as_ref(),
        )
        .await
        .or_status()?;
        tracing::info!(organisation_id = %org, person_id = %created.id, "person created");
        Ok(person_response(
            |person| pb::CreatePersonResponse { person },
            created,
        ))
    }

    #[tracing::instrument(skip_all)]
    async fn get_person(
        &self,
        request: Request<pb::GetPersonRequest>,
    ) -> Result<Response<pb::GetPersonResponse>, Status> {
        let caller = caller(&request)?;
        let req = request.get_ref();
        let org = conv::id("organisation_id", &req.organisation_id).or_status()?;
        let id = conv::id("id", &req.id).or_status()?;
        authorise(&self.store, &caller, Action::GetPerson, org)
            .await
            .or_status()?;
        let found = people::get(self.store.db(), org, id).await.or_status()?;
        Ok(person_response(
            |person| pb::GetPersonResponse { person },
            found,
        ))
    }

    #[tracing::instrument(skip_all)]
    async fn list_people(
        &self,
        request: Request<pb::ListPeopleRequest>,
    ) -> Result<Response<pb::ListPeopleResponse>, Status> {
        let caller = caller(&request)?;
        let req = request.into_inner();
        let org = conv::id("organisation_id", &req.organisation_id).or_status()?;
        let size = parse_page_size(req.page_size, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
            .map_err(|d| Error::invalid("page_size", d))
            .or_status()?;
        let role = conv::role_from_proto(req.role)
            .map_err(|d| Error::invalid("role", d))
            .or_status()?;
        for (field, value) in [
            ("department", &req.department),
            ("external_id", &req.external_id),
        ] {
            jalon_core::values::check_text(value)
                .map_err(|d| Error::invalid(field, d))
                .or_status()?;
        }
        let filter = PersonFilter {
            role,
            active: req.active,
            department: (!req.department.is_empty()).then_some(req.department),
            external_id: (!req.external_id.is_empty()).then_some(req.external_id),
        };
        let after = page::decode(&req.page_token, &filter.key(), "page_token").or_status()?;
        authorise(&self.store, &caller, Action::ListPeople, org)
            .await
            .or_status()?;
        let page = people::list(self.store.db(), org, &filter, size, after)
            .await
            .or_status()?;
        Ok(Response::new(pb::ListPeopleResponse {
            people: page.items.into_iter().map(conv::person_to_proto).collect(),
            next_page_token: page.next_page_token,
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn update_person(
        &self,
        request: Request<pb::UpdatePersonRequest>,
    ) -> Result<Response<pb::UpdatePersonResponse>, Status> {
        let caller = caller(&request)?;
        let req = request.into_inner();
        let org = conv::id("organisation_id", &req.organisation_id).or_status()?;
        let person = conv::required("person", req.person.as_ref()).or_status()?;
        let id = conv::id("person.id", &person.id).or_status()?;
        let patch = conv::person_patch(person, req.update_mask.as_ref()).or_status()?;
        let updated = people::update(
            self.store.db(),
            org,
            id,
            &person.etag,
            &requester(&caller),
            &patch,
        )
        .await
        .or_status()?;
        Ok(person_response(
            |person| pb::UpdatePersonResponse { person },
            updated,
        ))
    }

    #[tracing::instrument(skip_all)]
    async fn deactivate_person(
        &self,
        request: Request<pb::DeactivatePersonRequest>,
    ) -> Result<Response<pb::DeactivatePersonResponse>, Status> {
        let caller = caller(&request)?;
        let req = request.get_ref();
        let org = conv::id("organisation_id", &req.organisation_id).or_status()?;
        let id = conv::id("id", &req.id).or_status()?;
        let updated = people::set_active(
            self.store.db(),
            org,
            id,
            &req.etag,
            &requester(&caller),
            false,
        )
        .await
        .or_status()?;
        tracing::info!(organisation_id = %org, person_id = %id, "person deactivated");
        Ok(person_response(
            |person| pb::DeactivatePersonResponse { person },
            updated,
        ))
    }

    #[tracing::instrument(skip_all)]
    async fn reactivate_person(
        &self,
        request: Request<pb::ReactivatePersonRequest>,
    ) -> Result<Response<pb::ReactivatePersonResponse>, Status> {
        let caller = caller(&request)?;
        let req = request.get_ref();
        let org = conv::id("organisation_id", &req.organisation_id).or_status()?;
        let id = conv::id("id", &req.id).or_status()?;
        let updated = people::set_active(
            self.store.db(),
            org,
            id,
            &req.etag,
            &requester(&caller),
            true,
        )
        .await
        .or_status()?;
        tracing::info!(organisation_id = %org, person_id = %id, "person reactivated");
        Ok(person_response(
            |person| pb::ReactivatePersonResponse { person },
            updated,
        ))
    }

    #[tracing::instrument(skip_all)]
    async fn upsert_person(
        &self,
        request: Request<pb::UpsertPersonRequest>,
    ) -> Result<Response<pb::UpsertPersonResponse>, Status> {
        let caller = caller(&request)?;
        let req = request.into_inner();
        let org = conv::id("organisation_id", &req.organisation_id).or_status()?;
        let person = conv::required("person", req.person.as_ref()).or_status()?;
        let external_id = conv::upsert_key(person).or_status()?;
        let patch = conv::person_upsert_patch(person, req.update_mask.as_ref()).or_status()?;
        let upserted = people::upsert(
            self.store.db(),
            org,
            &requester(&caller),
            &external_id,
            || conv::new_person(person, "person", None),
            &patch,
        )
        .await
        .or_status()?;
        tracing::info!(
            organisation_id = %org,
            person_id = %upserted.person.id,
            created = upserted.created,
            "person upserted"
        );
        Ok(Response::new(pb::UpsertPersonResponse {
            person: Some(conv::person_to_proto(upserted.person)),
            created: upserted.created,
        }))
    }
}
