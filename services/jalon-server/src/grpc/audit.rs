//! `jalon.v1.AuditService`.

use jalon_core::{
    authz::Action,
    values::{DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, parse_page_size},
};
use jalon_proto::v1::{self as pb, audit_service_server::AuditService};
use jalon_store::{
    Store,
    audit::{self, Event, EventFilter},
    page,
};
use tonic::{Request, Response, Status};

use super::{authorise, caller, conversions as conv, projects::optional_person};
use crate::error::OrStatus;

/// The handlers of `AuditService`.
#[derive(Clone)]
pub struct AuditApi {
    pub store: Store,
}

fn event_to_proto(e: Event) -> pb::AuditEvent {
    pb::AuditEvent {
        id: e.id.to_string(),
        sequence: e.sequence,
        project_id: e.project_id.map(|p| p.to_string()).unwrap_or_default(),
        actor_person_id: e.actor_person_id.map(|p| p.to_string()).unwrap_or_default(),
        actor_subject: e.actor_subject,
        action: e.action,
        resource_type: e.resource_type,
        resource_id: e.resource_id,
        before_json: e.before_json,
        after_json: e.after_json,
        time: Some(conv::timestamp(e.time)),
        chain_sequence: e.chain_sequence,
        previous_hash: e.previous_hash,
        hash: e.hash,
    }
}

#[tonic::async_trait]
impl AuditService for AuditApi {
    #[tracing::instrument(skip_all)]
    async fn list_audit_events(
        &self,
        request: Request<pb::ListAuditEventsRequest>,
    ) -> Result<Response<pb::ListAuditEventsResponse>, Status> {
        let caller = caller(&request)?;
        let req = request.get_ref();
        let org = conv::id("organisation_id", &req.organisation_id).or_status()?;
        let mut v = jalon_core::error::Violations::new();
        let size = v.check(
            "page_size",
            parse_page_size(req.page_size, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE),
        );
        let project_id = v
            .check("project_id", optional_person(&req.project_id))
            .flatten();
        let actor_person_id = v
            .check("actor_person_id", optional_person(&req.actor_person_id))
            .flatten();
        let start = v
            .check("start_time", conv::time_in(req.start_time.as_ref()))
            .flatten();
        let end = v
            .check("end_time", conv::time_in(req.end_time.as_ref()))
            .flatten();
        let action = v
            .check("action", jalon_core::values::free_text(&req.action, 64))
            .filter(|a| !a.is_empty());
        let resource_type = v
            .check(
                "resource_type",
                jalon_core::values::free_text(&req.resource_type, 64),
            )
            .filter(|r| !r.is_empty());
        v.finish().or_status()?;
        authorise(&self.store, &caller, Action::ListAuditEvents, org)
            .await
            .or_status()?;
        let filter = EventFilter {
            project_id,
            actor_person_id,
            start,
            end,
            action,
            resource_type,
            newest_first: req.newest_first,
        };
        let after =
            page::decode::<i64>(&req.page_token, &filter.key(), "page_token").or_status()?;
        let page = audit::list(
            self.store.db(),
            org,
            &filter,
            size.unwrap_or(DEFAULT_PAGE_SIZE),
            after,
        )
        .await
        .or_status()?;
        Ok(Response::new(pb::ListAuditEventsResponse {
            events: page.items.into_iter().map(event_to_proto).collect(),
            next_page_token: page.next_page_token,
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn verify_audit_log(
        &self,
        request: Request<pb::VerifyAuditLogRequest>,
    ) -> Result<Response<pb::VerifyAuditLogResponse>, Status> {
        let caller = caller(&request)?;
        let org = conv::id("organisation_id", &request.get_ref().organisation_id).or_status()?;
        authorise(&self.store, &caller, Action::VerifyAuditLog, org)
            .await
            .or_status()?;
        let result = audit::verify(self.store.db(), org).await.or_status()?;
        if let Some((_, id, reason)) = &result.broken {
            tracing::warn!(organisation_id = %org, event_id = %id, %reason, "audit chain broken");
        }
        Ok(Response::new(match result.broken {
            None => pb::VerifyAuditLogResponse {
                valid: true,
                checked: result.checked,
                ..Default::default()
            },
            Some((sequence, id, reason)) => pb::VerifyAuditLogResponse {
                valid: false,
                checked: result.checked,
                first_broken_chain_sequence: sequence,
                first_broken_event_id: id.to_string(),
                reason,
            },
        }))
    }
}
