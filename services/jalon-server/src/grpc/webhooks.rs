//! `jalon.v1.WebhookService`.

use std::time::Duration;

use jalon_core::{
    Error, Result,
    authz::Action,
    error::Violations,
    organisation::etag,
    values::{DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, parse_page_size},
    webhook::{DeliveryState, EndpointUrl, MAX_DESCRIPTION_CHARS},
};
use jalon_proto::v1::{self as pb, webhook_service_server::WebhookService};
use jalon_store::{
    Store, page,
    webhooks::{self, Delivery, DeliveryFilter, Endpoint, EndpointPatch, NewEndpoint},
};
use tonic::{Request, Response, Status};

use super::{authorise, caller, conversions as conv, requester};
use crate::{config::WebhookSettings, error::OrStatus};

/// The handlers of `WebhookService`.
#[derive(Clone)]
pub struct WebhookApi {
    pub store: Store,
    pub settings: WebhookSettings,
}

const UPDATABLE: &[&str] = &["url", "description", "event_types", "enabled"];

fn endpoint_to_proto(e: Endpoint) -> pb::WebhookEndpoint {
    pb::WebhookEndpoint {
        id: e.id.to_string(),
        organisation_id: e.organisation_id.to_string(),
        url: e.url,
        description: e.description,
        event_types: e.event_types,
        enabled: e.enabled,
        disabled_reason: e.disabled_reason.unwrap_or_default(),
        disable_time: e.disable_time.map(conv::timestamp),
        previous_secret_expire_time: e.previous_secret_expire_time.map(conv::timestamp),
        failing_since: e.failing_since.map(conv::timestamp),
        create_time: Some(conv::timestamp(e.create_time)),
        update_time: Some(conv::timestamp(e.update_time)),
        etag: etag(e.version),
    }
}

fn state_to_proto(state: DeliveryState) -> pb::WebhookDeliveryState {
    match state {
        DeliveryState::Pending => pb::WebhookDeliveryState::Pending,
        DeliveryState::Succeeded => pb::WebhookDeliveryState::Succeeded,
        DeliveryState::Failed => pb::WebhookDeliveryState::Failed,
    }
}

fn state_from_proto(raw: i32) -> Result<Option<DeliveryState>> {
    match pb::WebhookDeliveryState::try_from(raw) {
        Ok(pb::WebhookDeliveryState::Unspecified) => Ok(None),
        Ok(pb::WebhookDeliveryState::Pending) => Ok(Some(DeliveryState::Pending)),
        Ok(pb::WebhookDeliveryState::Succeeded) => Ok(Some(DeliveryState::Succeeded)),
        Ok(pb::WebhookDeliveryState::Failed) => Ok(Some(DeliveryState::Failed)),
        Err(_) => Err(Error::invalid(
            "state",
            format!("{raw} is not a known value"),
        )),
    }
}

fn delivery_to_proto(d: Delivery) -> pb::WebhookDelivery {
    pb::WebhookDelivery {
        id: d.id.to_string(),
        endpoint_id: d.endpoint_id.to_string(),
        event_id: d.event_id.to_string(),
        event_position: d.event_position,
        event_type: d.event_type,
        state: state_to_proto(d.state) as i32,
        attempts: d.attempts,
        last_attempt_time: d.last_attempt_time.map(conv::timestamp),
        next_attempt_time: (d.state == DeliveryState::Pending)
            .then(|| conv::timestamp(d.next_attempt_time)),
        last_status_code: d.last_status_code.unwrap_or_default(),
        last_latency_ms: d.last_latency_ms.unwrap_or_default(),
        last_error: d.last_error.unwrap_or_default(),
        create_time: Some(conv::timestamp(d.create_time)),
        recent_attempts: d
            .recent_attempts
            .into_iter()
            .map(|a| pb::WebhookAttempt {
                number: a.number,
                start_time: Some(conv::timestamp(a.start_time)),
                status_code: a.status_code.unwrap_or_default(),
                latency_ms: a.latency_ms,
                error: a.error.unwrap_or_default(),
            })
            .collect(),
    }
}

impl WebhookApi {
    fn url(&self, field: &str, raw: &str, v: &mut Violations) -> Option<EndpointUrl> {
        match EndpointUrl::parse(raw, self.settings.allow_http) {
            Ok(url) => Some(url),
            Err(e) => {
                v.push(field, e);
                None
            }
        }
    }
}

fn description(field: &str, raw: &str, v: &mut Violations) -> String {
    if let Err(e) = jalon_core::values::check_text(raw) {
        v.push(field, e);
    } else if raw.chars().count() > MAX_DESCRIPTION_CHARS {
        v.push(
            field,
            format!("must be at most {MAX_DESCRIPTION_CHARS} characters"),
        );
    }
    raw.trim().to_owned()
}

fn event_types(field: &str, raw: &[String], v: &mut Violations) -> Vec<String> {
    let mut types = Vec::new();
    for (i, t) in raw.iter().enumerate() {
        if !jalon_store::events::is_type(t) {
            v.push(
                format!("{field}[{i}]"),
                "is not an event type (see the README's list)",
            );
        } else if !types.contains(t) {
            types.push(t.clone());
        }
    }
    types
}

#[tonic::async_trait]
impl WebhookService for WebhookApi {
    #[tracing::instrument(skip_all)]
    async fn create_webhook_endpoint(
        &self,
        request: Request<pb::CreateWebhookEndpointRequest>,
    ) -> Result<Response<pb::CreateWebhookEndpointResponse>, Status> {
        let caller = caller(&request)?;
        let req = request.into_inner();
        let org = conv::id("organisation_id", &req.organisation_id).or_status()?;
        let endpoint = conv::required("endpoint", req.endpoint.as_ref()).or_status()?;
        let mut v = Violations::new();
        let url = self.url("endpoint.url", &endpoint.url, &mut v);
        let description = description("endpoint.description", &endpoint.description, &mut v);
        let types = event_types("endpoint.event_types", &endpoint.event_types, &mut v);
        v.finish().or_status()?;
        let Some(url) = url else {
            return Err(Error::invalid("endpoint.url", "is required")).or_status();
        };
        let new = NewEndpoint {
            url,
            description,
            event_types: types,
            enabled: endpoint.enabled,
        };
        let key = conv::idempotency_key(
            format!("webhooks:{org}"),
            &req.request_id,
            &pb::CreateWebhookEndpointRequest {
                request_id: String::new(),
                ..req.clone()
            },
        )
        .or_status()?;
        let secret = crate::webhooks::new_secret()
            .map_err(Error::Internal)
            .or_status()?;
        let (created, secret) = webhooks::create(
            self.store.db(),
            org,
            &requester(&caller),
            &new,
            &secret,
            key.as_ref(),
        )
        .await
        .or_status()?;
        tracing::info!(organisation_id = %org, endpoint_id = %created.id, "webhook endpoint created");
        Ok(Response::new(pb::CreateWebhookEndpointResponse {
            endpoint: Some(endpoint_to_proto(created)),
            secret,
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn get_webhook_endpoint(
        &self,
        request: Request<pb::GetWebhookEndpointRequest>,
    ) -> Result<Response<pb::GetWebhookEndpointResponse>, Status> {
        let caller = caller(&request)?;
        let req = request.get_ref();
        let org = conv::id("organisation_id", &req.organisation_id).or_status()?;
        let id = conv::id("id", &req.id).or_status()?;
        authorise(&self.store, &caller, Action::GetWebhookEndpoint, org)
            .await
            .or_status()?;
        let found = webhooks::get(self.store.db(), org, id).await.or_status()?;
        Ok(Response::new(pb::GetWebhookEndpointResponse {
            endpoint: Some(endpoint_to_proto(found)),
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn list_webhook_endpoints(
        &self,
        request: Request<pb::ListWebhookEndpointsRequest>,
    ) -> Result<Response<pb::ListWebhookEndpointsResponse>, Status> {
        let caller = caller(&request)?;
        let req = request.get_ref();
        let org = conv::id("organisation_id", &req.organisation_id).or_status()?;
        let size = parse_page_size(req.page_size, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
            .map_err(|d| Error::invalid("page_size", d))
            .or_status()?;
        let after = page::decode(&req.page_token, "", "page_token").or_status()?;
        authorise(&self.store, &caller, Action::ListWebhookEndpoints, org)
            .await
            .or_status()?;
        let page = webhooks::list(self.store.db(), org, size, after)
            .await
            .or_status()?;
        Ok(Response::new(pb::ListWebhookEndpointsResponse {
            endpoints: page.items.into_iter().map(endpoint_to_proto).collect(),
            next_page_token: page.next_page_token,
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn update_webhook_endpoint(
        &self,
        request: Request<pb::UpdateWebhookEndpointRequest>,
    ) -> Result<Response<pb::UpdateWebhookEndpointResponse>, Status> {
        let caller = caller(&request)?;
        let req = request.into_inner();
        let org = conv::id("organisation_id", &req.organisation_id).or_status()?;
        let endpoint = conv::required("endpoint", req.endpoint.as_ref()).or_status()?;
        let id = conv::id("endpoint.id", &endpoint.id).or_status()?;
        let paths = conv::mask_paths(req.update_mask.as_ref(), UPDATABLE).or_status()?;
        let mut v = Violations::new();
        let mut patch = EndpointPatch::default();
        for path in &paths {
            match path.as_str() {
                "url" => patch.url = self.url("endpoint.url", &endpoint.url, &mut v),
                "description" => {
                    patch.description = Some(description(
                        "endpoint.description",
                        &endpoint.description,
                        &mut v,
                    ));
                }
                "event_types" => {
                    patch.event_types = Some(event_types(
                        "endpoint.event_types",
                        &endpoint.event_types,
                        &mut v,
                    ));
                }
                "enabled" => patch.enabled = Some(endpoint.enabled),
                _ => {}
            }
        }
        v.finish().or_status()?;
        let updated = webhooks::update(
            self.store.db(),
            org,
            id,
            &endpoint.etag,
            &requester(&caller),
            &patch,
        )
        .await
        .or_status()?;
        Ok(Response::new(pb::UpdateWebhookEndpointResponse {
            endpoint: Some(endpoint_to_proto(updated)),
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn delete_webhook_endpoint(
        &self,
        request: Request<pb::DeleteWebhookEndpointRequest>,
    ) -> Result<Response<pb::DeleteWebhookEndpointResponse>, Status> {
        let caller = caller(&request)?;
        let req = request.get_ref();
        let org = conv::id("organisation_id", &req.organisation_id).or_status()?;
        let id = conv::id("id", &req.id).or_status()?;
        webhooks::delete(self.store.db(), org, id, &req.etag, &requester(&caller))
            .await
            .or_status()?;
        tracing::info!(organisation_id = %org, endpoint_id = %id, "webhook endpoint deleted");
        Ok(Response::new(pb::DeleteWebhookEndpointResponse {}))
    }

    #[tracing::instrument(skip_all)]
    async fn rotate_webhook_secret(
        &self,
        request: Request<pb::RotateWebhookSecretRequest>,
    ) -> Result<Response<pb::RotateWebhookSecretResponse>, Status> {
        let caller = caller(&request)?;
        let req = request.get_ref();
        let org = conv::id("organisation_id", &req.organisation_id).or_status()?;
        let id = conv::id("id", &req.id).or_status()?;
        let secret = crate::webhooks::new_secret()
            .map_err(Error::Internal)
            .or_status()?;
        let updated = webhooks::rotate_secret(
            self.store.db(),
            org,
            id,
            &req.etag,
            &requester(&caller),
            &secret,
            Duration::from_secs(self.settings.secret_grace_secs),
        )
        .await
        .or_status()?;
        tracing::info!(organisation_id = %org, endpoint_id = %id, "webhook secret rotated");
        Ok(Response::new(pb::RotateWebhookSecretResponse {
            endpoint: Some(endpoint_to_proto(updated)),
            secret,
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn list_webhook_deliveries(
        &self,
        request: Request<pb::ListWebhookDeliveriesRequest>,
    ) -> Result<Response<pb::ListWebhookDeliveriesResponse>, Status> {
        let caller = caller(&request)?;
        let req = request.get_ref();
        let org = conv::id("organisation_id", &req.organisation_id).or_status()?;
        let endpoint_id = conv::id("endpoint_id", &req.endpoint_id).or_status()?;
        let size = parse_page_size(req.page_size, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
            .map_err(|d| Error::invalid("page_size", d))
            .or_status()?;
        let filter = DeliveryFilter {
            state: state_from_proto(req.state).or_status()?,
        };
        let after =
            page::decode(&req.page_token, &filter.key(endpoint_id), "page_token").or_status()?;
        authorise(&self.store, &caller, Action::ListWebhookDeliveries, org)
            .await
            .or_status()?;
        let page =
            webhooks::list_deliveries(self.store.db(), org, endpoint_id, filter, size, after)
                .await
                .or_status()?;
        Ok(Response::new(pb::ListWebhookDeliveriesResponse {
            deliveries: page.items.into_iter().map(delivery_to_proto).collect(),
            next_page_token: page.next_page_token,
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn redeliver_webhook_event(
        &self,
        request: Request<pb::RedeliverWebhookEventRequest>,
    ) -> Result<Response<pb::RedeliverWebhookEventResponse>, Status> {
        let caller = caller(&request)?;
        let req = request.get_ref();
        let org = conv::id("organisation_id", &req.organisation_id).or_status()?;
        let endpoint_id = conv::id("endpoint_id", &req.endpoint_id).or_status()?;
        let event_id = conv::id("event_id", &req.event_id).or_status()?;
        let delivery = webhooks::redeliver(
            self.store.db(),
            org,
            endpoint_id,
            event_id,
            &requester(&caller),
            Duration::from_secs(self.settings.retry_window_secs),
            &self.settings.source,
        )
        .await
        .or_status()?;
        // Due now: wake this replica's worker.
        jalon_store::events::wake_local(org);
        tracing::info!(organisation_id = %org, %endpoint_id, %event_id, "webhook redelivery requested");
        Ok(Response::new(pb::RedeliverWebhookEventResponse {
            delivery: Some(delivery_to_proto(delivery)),
        }))
    }
}
