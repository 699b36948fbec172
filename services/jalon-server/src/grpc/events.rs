//! `jalon.v1.EventService`: the organisation's outbox as a resumable stream.
//!
//! A watch replays what the caller may see after its position, then waits
//! for this process's commits and, on PostgreSQL, the other replicas'
//! (`jalon_store::events::listen` forwards their NOTIFYs). Each wake-up
//! re-reads from the cursor: positions are assigned in commit order, so
//! nothing is skipped and nothing is sent twice. The caller's membership and
//! the visibility of each project are read again for every batch: a MEMBER
//! who stops leading a project stops seeing its events, a deactivated
//! caller's stream ends.

use std::{collections::HashMap, time::Duration};

use jalon_core::{
    Error, FieldViolation, Result,
    authz::{self, Action, Member, Role},
};
use jalon_proto::v1::{self as pb, event_service_server::EventService};
use jalon_store::{
    Store,
    events::{self, Event},
};
use tokio::sync::{broadcast, mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use super::{authorise, caller, conversions as conv, member};
use crate::error::{OrStatus, to_status};

/// Events read per statement while replaying.
const BATCH: u64 = 500;

/// The handlers of `EventService`.
#[derive(Clone)]
pub struct EventApi {
    pub store: Store,
    /// How long a watch stays silent before it sends a heartbeat.
    pub heartbeat: Duration,
    /// Turns true when the server starts draining: streams end UNAVAILABLE.
    pub shutdown: watch::Receiver<bool>,
}

fn event_to_proto(e: Event) -> pb::Event {
    pb::Event {
        id: e.id.to_string(),
        position: e.position,
        r#type: e.kind,
        subject: e.subject,
        project_id: e.project_id.map(|p| p.to_string()).unwrap_or_default(),
        actor_person_id: e.actor_person_id.map(|p| p.to_string()).unwrap_or_default(),
        actor_subject: e.actor_subject,
        time: Some(conv::timestamp(e.time)),
        data_json: e.data,
    }
}

/// What a watch asked for.
struct Watch {
    organisation_id: Uuid,
    subject: String,
    types: Vec<String>,
    project_id: Option<Uuid>,
    cursor: i64,
}

fn expired(position: i64, purged: i64) -> Error {
    Error::precondition(
        "HISTORY_EXPIRED",
        format!("positions/{position}"),
        format!(
            "the events up to position {purged} are past their retention: list again and watch from the position the list returns"
        ),
    )
}

#[tonic::async_trait]
impl EventService for EventApi {
    type WatchEventsStream = ReceiverStream<Result<pb::WatchEventsResponse, Status>>;

    #[tracing::instrument(skip_all)]
    async fn watch_events(
        &self,
        request: Request<pb::WatchEventsRequest>,
    ) -> Result<Response<Self::WatchEventsStream>, Status> {
        let caller = caller(&request)?;
        let req = request.into_inner();
        let org = conv::id("organisation_id", &req.organisation_id).or_status()?;
        let mut violations = Vec::new();
        for (i, kind) in req.types.iter().enumerate() {
            if !events::is_type(kind) {
                violations.push(FieldViolation::new(
                    format!("types[{i}]"),
                    format!("'{kind}' is not an event type (the README lists them)"),
                ));
            }
        }
        let project_id = if req.project_id.is_empty() {
            None
        } else {
            jalon_core::values::parse_id(&req.project_id)
                .map_err(|d| violations.push(FieldViolation::new("project_id", d)))
                .ok()
        };
        if req.after_position < 0 {
            violations.push(FieldViolation::new(
                "after_position",
                "must not be negative",
            ));
        }
        if !violations.is_empty() {
            return Err(Error::InvalidArgument(violations)).or_status();
        }
        let membership = member(
            authorise(&self.store, &caller, Action::WatchEvents, org)
                .await
                .or_status()?,
        )
        .or_status()?;
        if let Some(p) = project_id {
            super::visible_project(&self.store, &membership, org, p)
                .await
                .or_status()?;
        }
        let (head, purged) = events::head(self.store.db(), org).await.or_status()?;
        let cursor = if req.from_now {
            head
        } else {
            req.after_position
        };
        if cursor > head {
            return Err(Error::invalid(
                "after_position",
                format!("is beyond the organisation's last position ({head})"),
            ))
            .or_status();
        }
        if cursor < purged {
            return Err(expired(cursor, purged)).or_status();
        }
        tracing::info!(organisation_id = %org, cursor, "watch started");
        let (tx, rx) = mpsc::channel(64);
        let watch = Watch {
            organisation_id: org,
            subject: caller.subject.clone(),
            types: req.types,
            project_id,
            cursor,
        };
        // Subscribed before the first read: a commit between the read and
        // the wait still wakes the watch.
        let wake = events::subscribe();
        tokio::spawn(stream(
            self.store.clone(),
            watch,
            wake,
            self.shutdown.clone(),
            self.heartbeat,
            tx,
        ));
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

type Sender = mpsc::Sender<Result<pb::WatchEventsResponse, Status>>;

/// Sends `message`; false when the client has gone.
async fn send(tx: &Sender, message: Result<pb::WatchEventsResponse, Status>) -> bool {
    tx.send(message).await.is_ok()
}

async fn stream(
    store: Store,
    mut watch: Watch,
    mut wake: broadcast::Receiver<Uuid>,
    mut shutdown: watch::Receiver<bool>,
    heartbeat: Duration,
    tx: Sender,
) {
    let org = watch.organisation_id;
    let mut silent_since = tokio::time::Instant::now();
    loop {
        match forward(&store, &mut watch, &tx).await {
            Ok(Some(sent)) => {
                if sent > 0 {
                    silent_since = tokio::time::Instant::now();
                }
            }
            Ok(None) => return,
            Err(e) => {
                let _ = send(&tx, Err(to_status(e))).await;
                return;
            }
        }
        if silent_since.elapsed() >= heartbeat {
            let beat = pb::WatchEventsResponse {
                kind: Some(pb::watch_events_response::Kind::Heartbeat(pb::Heartbeat {
                    position: watch.cursor,
                    time: Some(conv::timestamp(chrono::Utc::now())),
                })),
            };
            if !send(&tx, Ok(beat)).await {
                return;
            }
            silent_since = tokio::time::Instant::now();
        }
        let until_beat = heartbeat.saturating_sub(silent_since.elapsed());
        tokio::select! {
            woken = woken_for(&mut wake, org) => {
                if !woken {
                    let _ = send(&tx, Err(Status::unavailable("the event feed stopped: resume from the last position"))).await;
                    return;
                }
            }
            () = tokio::time::sleep(until_beat) => {}
            () = stopping(&mut shutdown) => {
                let _ = send(&tx, Err(Status::unavailable(
                    "the server is shutting down: resume from the last position on another replica",
                ))).await;
                return;
            }
            () = tx.closed() => return,
        }
    }
}

/// Completes when the server starts draining (or its signal is gone).
async fn stopping(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stopping| *stopping).await;
}

/// Waits for a commit of `org` (or a wake-up of everyone, after the
/// listener reconnected or this receiver fell behind). False when the
/// channel closed.
async fn woken_for(wake: &mut broadcast::Receiver<Uuid>, org: Uuid) -> bool {
    loop {
        match wake.recv().await {
            Ok(id) if id == org || id.is_nil() => return true,
            Ok(_) => {}
            Err(broadcast::error::RecvError::Lagged(_)) => return true,
            Err(broadcast::error::RecvError::Closed) => return false,
        }
    }
}

/// Sends the events after the cursor that the caller may see, batch by
/// batch, advancing the cursor over every event read. `Some(sent)`, or
/// `None` when the client has gone.
async fn forward(store: &Store, watch: &mut Watch, tx: &Sender) -> Result<Option<usize>> {
    let db = store.db();
    let org = watch.organisation_id;
    let mut sent = 0;
    loop {
        // Read again for every batch: a deactivated caller's stream ends.
        let Some(membership) = jalon_store::people::membership(db, org, &watch.subject).await?
        else {
            return Err(Error::PermissionDenied(
                "the caller is no longer an active member of the organisation".into(),
            ));
        };
        let batch = events::read(db, org, watch.cursor, BATCH).await?;
        let Some(first) = batch.first() else {
            return Ok(Some(sent));
        };
        if first.position != watch.cursor + 1 {
            let (_, purged) = events::head(db, org).await?;
            return Err(expired(watch.cursor, purged));
        }
        let full = batch.len() as u64 == BATCH;
        let visible = visible_projects(store, org, &membership.member(), &batch).await?;
        // Organisation-level alerts (a disabled webhook endpoint) are for
        // ADMIN and DIRECTOR, as in ListAlerts.
        let organisation_alerts =
            jalon_core::webhook::sees_organisation_alerts(membership.member().role);
        for event in batch {
            watch.cursor = event.position;
            let wanted = (watch.types.is_empty() || watch.types.contains(&event.kind))
                && (watch.project_id.is_none() || watch.project_id == event.project_id)
                && event
                    .project_id
                    .is_none_or(|p| visible.get(&p).copied().unwrap_or(false))
                && (organisation_alerts
                    || event.project_id.is_some()
                    || !event.kind.starts_with("alert."));
            if wanted {
                let message = pb::WatchEventsResponse {
                    kind: Some(pb::watch_events_response::Kind::Event(event_to_proto(
                        event,
                    ))),
                };
                if !send(tx, Ok(message)).await {
                    return Ok(None);
                }
                sent += 1;
            }
        }
        if !full {
            return Ok(Some(sent));
        }
    }
}

/// Which of the batch's projects the member sees now (every project for
/// roles other than MEMBER).
async fn visible_projects(
    store: &Store,
    organisation_id: Uuid,
    member: &Member,
    batch: &[Event],
) -> Result<HashMap<Uuid, bool>> {
    let mut ids: Vec<Uuid> = batch.iter().filter_map(|e| e.project_id).collect();
    ids.sort();
    ids.dedup();
    if member.role != Role::Member {
        return Ok(ids.into_iter().map(|id| (id, true)).collect());
    }
    let parties = jalon_store::projects::parties(store.db(), organisation_id, &ids).await?;
    Ok(parties
        .into_iter()
        .map(|(id, parties)| (id, authz::sees(member, &parties)))
        .collect())
}
