//! `jalon.v1.PortfolioService`: the innovation director's view.

use chrono::{DateTime, Utc};
use jalon_core::{
    authz::{Action, Role, Visibility, visibility},
    error::Violations,
    organisation::Organisation,
    portfolio::{AlertKind, Figures, Summary},
    project::parse_tags,
    values::{CurrencyCode, MAX_PAGE_SIZE, Money, parse_page_size},
    webhook::sees_organisation_alerts,
};
use jalon_proto::v1::{self as pb, portfolio_service_server::PortfolioService};
use jalon_store::{
    Store, organisations,
    portfolio::{self, Filter, Row, SortKey},
    webhooks,
};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use super::{
    assessments::concern_out,
    caller, check_standing,
    conversions::{self as conv, money_out},
    finance::category_out,
    gates::outcome_out,
    member,
    projects::{optional_person, phase_in, phase_out, status_in, status_out, tier_in, tier_out},
};
use crate::error::OrStatus;

/// Rows of a ListPortfolioProjects page unless asked otherwise.
const DEFAULT_ROWS: u32 = 50;
/// Alerts of a ListAlerts page unless asked otherwise, and at most.
const DEFAULT_ALERTS: u32 = 100;
const MAX_ALERTS: u32 = 1000;
/// Rows read per query while exporting.
const EXPORT_BATCH: u32 = 500;

/// The handlers of `PortfolioService`.
#[derive(Clone)]
pub struct PortfolioApi {
    pub store: Store,
}

fn alert_kind_in(raw: i32) -> Result<Option<AlertKind>, String> {
    super::from_wire(
        pb::AlertKind::try_from(raw).ok().map(|e| e.as_str_name()),
        "ALERT_KIND_",
        raw,
    )
}

fn alert_kind_out(kind: AlertKind) -> i32 {
    pb::AlertKind::from_str_name(&format!("ALERT_KIND_{}", kind.as_str())).map_or(0, |e| e as i32)
}

/// The filter of a request, validated; a MEMBER only sees their projects.
fn filter_in(
    f: Option<&pb::PortfolioFilter>,
    v: &mut Violations,
    visibility: Visibility,
) -> Filter {
    let Some(f) = f else {
        return Filter {
            visibility,
            ..Filter::default()
        };
    };
    Filter {
        business_unit: v
            .check(
                "filter.business_unit",
                jalon_core::values::free_text(
                    &f.business_unit,
                    jalon_core::values::ShortText::MAX_CHARS,
                ),
            )
            .filter(|b| !b.is_empty()),
        sponsor_id: v
            .check("filter.sponsor_id", optional_person(&f.sponsor_id))
            .flatten(),
        lead_id: v
            .check("filter.lead_id", optional_person(&f.lead_id))
            .flatten(),
        tags: v
            .check("filter.tags", parse_tags(&f.tags))
            .unwrap_or_default(),
        phase: v.check("filter.phase", phase_in(f.phase)).flatten(),
        status: v.check("filter.status", status_in(f.status)).flatten(),
        ai_act_tier: v
            .check("filter.ai_act_tier", tier_in(f.ai_act_tier))
            .flatten(),
        created_from: v
            .check(
                "filter.create_time_from",
                conv::time_in(f.create_time_from.as_ref()),
            )
            .flatten(),
        created_to: v
            .check(
                "filter.create_time_to",
                conv::time_in(f.create_time_to.as_ref()),
            )
            .flatten(),
        cost_centre: v
            .check(
                "filter.cost_centre",
                jalon_core::finance::parse_cost_centre(&f.cost_centre),
            )
            .filter(|c| !c.is_empty()),
        visibility,
    }
}

fn sort_in(raw: i32) -> Result<SortKey, String> {
    Ok(match pb::PortfolioSort::try_from(raw) {
        Ok(pb::PortfolioSort::Unspecified | pb::PortfolioSort::Name) => SortKey::Name,
        Ok(pb::PortfolioSort::Phase) => SortKey::Phase,
        Ok(pb::PortfolioSort::DaysInPhase) => SortKey::DaysInPhase,
        Ok(pb::PortfolioSort::Readiness) => SortKey::Readiness,
        Ok(pb::PortfolioSort::KpiGain) => SortKey::KpiGain,
        Ok(pb::PortfolioSort::Cost) => SortKey::Cost,
        Ok(pb::PortfolioSort::Benefit) => SortKey::Benefit,
        Ok(pb::PortfolioSort::Roi) => SortKey::Roi,
        Ok(pb::PortfolioSort::Alerts) => SortKey::Alerts,
        Ok(pb::PortfolioSort::CreateTime) => SortKey::CreateTime,
        Err(_) => return Err(format!("{raw} is not a known value")),
    })
}

fn decimal(value: f64, dp: usize) -> String {
    format!("{value:.dp$}")
}

fn row_out(row: Row, currency: CurrencyCode, now: DateTime<Utc>) -> pb::PortfolioProject {
    let Row {
        figures: f,
        alerts,
        cost_centre_cost,
    } = row;
    let Figures {
        project_id,
        name,
        business_unit,
        sponsor_id,
        lead_id,
        phase,
        status,
        ai_act_tier,
        project_create_time,
        phase_enter_time,
        readiness,
        open_must_items,
        kpi_gain,
        budget_minor,
        cost_minor,
        benefit_minor,
        paid_back,
        ..
    } = f;
    let money = |minor: i64| money_out(Money::from_minor(minor, currency));
    pb::PortfolioProject {
        project_id: project_id.to_string(),
        name,
        business_unit,
        phase: phase_out(Some(phase)),
        status: status_out(Some(status)),
        ai_act_tier: tier_out(Some(ai_act_tier)),
        sponsor_id: sponsor_id.map(|s| s.to_string()).unwrap_or_default(),
        lead_id: lead_id.map(|s| s.to_string()).unwrap_or_default(),
        phase_enter_time: Some(conv::timestamp(phase_enter_time)),
        days_in_phase: (now - phase_enter_time).num_days().max(0),
        readiness: decimal(readiness, 4),
        open_must_items: i64::from(open_must_items),
        kpi_gain: kpi_gain.map(|g| decimal(g, 4)).unwrap_or_default(),
        budget: budget_minor.map(money),
        cost: Some(money(cost_minor)),
        benefit: Some(money(benefit_minor)),
        roi: jalon_core::finance::roi_text(jalon_core::finance::roi(cost_minor, benefit_minor)),
        paid_back,
        alerts: alerts.iter().map(|(k, _, _)| alert_kind_out(*k)).collect(),
        create_time: Some(conv::timestamp(project_create_time)),
        cost_centre_cost: cost_centre_cost.map(money),
    }
}

fn summary_out(s: Summary, now: DateTime<Utc>) -> pb::PortfolioSummary {
    pb::PortfolioSummary {
        project_count: s.project_count,
        by_phase_status: s
            .by_phase_status
            .into_iter()
            .map(|(phase, status, count)| pb::PhaseStatusCount {
                phase: phase_out(Some(phase)),
                status: status_out(Some(status)),
                count,
            })
            .collect(),
        funnel: Some(pb::Funnel {
            stages: s
                .funnel
                .into_iter()
                .map(|f| pb::FunnelStage {
                    phase: phase_out(Some(f.phase)),
                    entered: f.entered,
                    decided: f.decided,
                    passed: f.passed,
                    killed: f.killed,
                    outcomes: f
                        .outcomes
                        .into_iter()
                        .map(|(o, count)| pb::OutcomeCount {
                            outcome: outcome_out(Some(o)),
                            count,
                        })
                        .collect(),
                    kill_rate: f.kill_rate,
                })
                .collect(),
            reached_production: s.reached_production,
            poc_to_production_share: s.poc_to_production_share,
        }),
        time_in_phase: s
            .time_in_phase
            .into_iter()
            .map(|d| pb::PhaseDuration {
                phase: phase_out(Some(d.phase)),
                stays: d.stays,
                median_days: d.median_days,
                p90_days: d.p90_days,
            })
            .collect(),
        money: Some(pb::PortfolioMoney {
            budget: Some(money_out(s.money.budget)),
            cost: Some(money_out(s.money.cost)),
            cost_by_category: s
                .money
                .cost_by_category
                .into_iter()
                .map(|(c, m)| pb::CategoryAmount {
                    category: category_out(Some(c)),
                    amount: Some(money_out(m)),
                })
                .collect(),
            recorded_benefit: Some(money_out(s.money.recorded_benefit)),
            derived_benefit: Some(money_out(s.money.derived_benefit)),
            net_value: Some(money_out(s.money.net_value)),
            roi: s.money.roi,
            paid_back_projects: s.money.paid_back_projects,
            projects_with_cost: s.money.projects_with_cost,
            cost_by_cost_centre: s
                .money
                .cost_by_cost_centre
                .into_iter()
                .map(|c| pb::PortfolioCostCentre {
                    cost_centre: c.cost_centre,
                    cost: Some(money_out(c.cost)),
                    project_count: c.project_count,
                })
                .collect(),
        }),
        ai_act_tiers: s
            .tiers
            .into_iter()
            .map(|(tier, count)| pb::TierCount {
                tier: tier_out(Some(tier)),
                count,
            })
            .collect(),
        risk_heat_map: s
            .risk_heat_map
            .into_iter()
            .map(|(phase, concern, n)| pb::RiskCell {
                phase: phase_out(Some(phase)),
                concern: concern_out(Some(concern)),
                open_high_risk_items: n,
            })
            .collect(),
        alerts: s
            .alerts
            .into_iter()
            .map(|(kind, count)| pb::AlertCount {
                kind: alert_kind_out(kind),
                count,
            })
            .collect(),
        compute_time: Some(conv::timestamp(now)),
    }
}

impl PortfolioApi {
    /// Authorises the caller and reads the organisation's currency; a MEMBER
    /// is scoped to their projects.
    async fn scope(
        &self,
        caller: &crate::auth::Caller,
        action: Action,
        org: Uuid,
    ) -> jalon_core::Result<(Visibility, Organisation, CurrencyCode, Role)> {
        // One statement: the membership and the organisation together.
        let (membership, o) =
            organisations::get_as_member(self.store.readers(), org, &caller.subject).await?;
        check_standing(caller, action, membership.as_ref())?;
        let membership = member(membership)?;
        let o = o.ok_or(jalon_core::Error::NotFound {
            resource: "organisation",
        })?;
        let currency = CurrencyCode::parse(&o.default_currency)
            .map_err(|e| jalon_core::Error::Internal(format!("stored currency: {e}")))?;
        let member = membership.member();
        Ok((visibility(&member), o, currency, member.role))
    }
}

#[tonic::async_trait]
impl PortfolioService for PortfolioApi {
    #[tracing::instrument(skip_all)]
    async fn get_portfolio_summary(
        &self,
        request: Request<pb::GetPortfolioSummaryRequest>,
    ) -> Result<Response<pb::GetPortfolioSummaryResponse>, Status> {
        let caller = caller(&request)?;
        let req = request.get_ref();
        let org = conv::id("organisation_id", &req.organisation_id).or_status()?;
        let (visible_to, org, _, _) = self
            .scope(&caller, Action::GetPortfolioSummary, org)
            .await
            .or_status()?;
        let mut v = Violations::new();
        let filter = filter_in(req.filter.as_ref(), &mut v, visible_to);
        v.finish().or_status()?;
        let now = Utc::now();
        let snapshot = self.store.snapshot().await.or_status()?;
        let (event_position, _) = jalon_store::events::head(&snapshot, org.id)
            .await
            .or_status()?;
        let summary = portfolio::summary(&snapshot, &org, &filter, now, req.include_cost_centres)
            .await
            .or_status()?;
        Ok(Response::new(pb::GetPortfolioSummaryResponse {
            summary: Some(summary_out(summary, now)),
            event_position,
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn list_portfolio_projects(
        &self,
        request: Request<pb::ListPortfolioProjectsRequest>,
    ) -> Result<Response<pb::ListPortfolioProjectsResponse>, Status> {
        let caller = caller(&request)?;
        let req = request.get_ref();
        let org = conv::id("organisation_id", &req.organisation_id).or_status()?;
        let (visible_to, org, currency, _) = self
            .scope(&caller, Action::ListPortfolioProjects, org)
            .await
            .or_status()?;
        let mut v = Violations::new();
        let filter = filter_in(req.filter.as_ref(), &mut v, visible_to);
        let sort = v.check("sort", sort_in(req.sort));
        let size = v.check(
            "page_size",
            parse_page_size(req.page_size, DEFAULT_ROWS, MAX_PAGE_SIZE),
        );
        v.finish().or_status()?;
        let now = Utc::now();
        let snapshot = self.store.snapshot().await.or_status()?;
        let (event_position, _) = jalon_store::events::head(&snapshot, org.id)
            .await
            .or_status()?;
        let page = portfolio::list(
            &snapshot,
            &org,
            &filter,
            sort.unwrap_or(SortKey::Name),
            req.descending,
            size.unwrap_or(DEFAULT_ROWS),
            &req.page_token,
            now,
        )
        .await
        .or_status()?;
        Ok(Response::new(pb::ListPortfolioProjectsResponse {
            projects: page
                .rows
                .into_iter()
                .map(|r| row_out(r, currency, now))
                .collect(),
            next_page_token: page.next_page_token,
            total_size: page.total_size,
            event_position,
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn list_alerts(
        &self,
        request: Request<pb::ListAlertsRequest>,
    ) -> Result<Response<pb::ListAlertsResponse>, Status> {
        let caller = caller(&request)?;
        let req = request.get_ref();
        let org = conv::id("organisation_id", &req.organisation_id).or_status()?;
        let (visible_to, org, _, role) = self
            .scope(&caller, Action::ListAlerts, org)
            .await
            .or_status()?;
        let mut v = Violations::new();
        let filter = filter_in(req.filter.as_ref(), &mut v, visible_to);
        // Organisation-level alerts (a disabled webhook endpoint) concern no
        // project: on the first page, to those who see them, when no project
        // filter narrows the request.
        let webhook_kind = req.kind == pb::AlertKind::WebhookDisabled as i32;
        let organisation_alerts = sees_organisation_alerts(role)
            && req.page_token.is_empty()
            && req
                .filter
                .as_ref()
                .is_none_or(|f| *f == pb::PortfolioFilter::default())
            && (webhook_kind || req.kind == pb::AlertKind::Unspecified as i32);
        let kind = if webhook_kind {
            None
        } else {
            v.check("kind", alert_kind_in(req.kind)).flatten()
        };
        let size = v.check(
            "page_size",
            parse_page_size(req.page_size, DEFAULT_ALERTS, MAX_ALERTS),
        );
        v.finish().or_status()?;
        let snapshot = self.store.snapshot().await.or_status()?;
        let (event_position, _) = jalon_store::events::head(&snapshot, org.id)
            .await
            .or_status()?;
        let mut out: Vec<pb::Alert> = if organisation_alerts {
            webhooks::disabled_alerts(&snapshot, org.id)
                .await
                .or_status()?
                .into_iter()
                .map(|a| pb::Alert {
                    project_id: String::new(),
                    project_name: String::new(),
                    kind: pb::AlertKind::WebhookDisabled as i32,
                    since: Some(conv::timestamp(a.since)),
                    reason: a.reason,
                    webhook_endpoint_id: a.endpoint_id.to_string(),
                })
                .collect()
        } else {
            Vec::new()
        };
        let (alerts, next_page_token) = if webhook_kind {
            (Vec::new(), String::new())
        } else {
            portfolio::alerts(
                &snapshot,
                &org,
                &filter,
                kind,
                size.unwrap_or(DEFAULT_ALERTS),
                &req.page_token,
                Utc::now(),
            )
            .await
            .or_status()?
        };
        out.extend(alerts.into_iter().map(|a| pb::Alert {
            project_id: a.project_id.to_string(),
            project_name: a.project_name,
            kind: alert_kind_out(a.kind),
            since: Some(conv::timestamp(a.since)),
            reason: a.reason,
            webhook_endpoint_id: String::new(),
        }));
        Ok(Response::new(pb::ListAlertsResponse {
            alerts: out,
            next_page_token,
            event_position,
        }))
    }

    type ExportPortfolioStream = ReceiverStream<Result<pb::ExportPortfolioResponse, Status>>;

    #[tracing::instrument(skip_all)]
    async fn export_portfolio(
        &self,
        request: Request<pb::ExportPortfolioRequest>,
    ) -> Result<Response<Self::ExportPortfolioStream>, Status> {
        let caller = caller(&request)?;
        let req = request.get_ref();
        let org = conv::id("organisation_id", &req.organisation_id).or_status()?;
        let (visible_to, org, currency, _) = self
            .scope(&caller, Action::ExportPortfolio, org)
            .await
            .or_status()?;
        let mut v = Violations::new();
        let filter = filter_in(req.filter.as_ref(), &mut v, visible_to);
        v.finish().or_status()?;
        let store = self.store.clone();
        let now = Utc::now();
        // A small buffer: the export reads a batch only when the client has
        // taken the previous one, so memory stays flat however large the
        // portfolio.
        let (tx, rx) = tokio::sync::mpsc::channel(EXPORT_BATCH as usize);
        tokio::spawn(async move {
            let mut token = String::new();
            loop {
                let page = match portfolio::list(
                    store.db(),
                    &org,
                    &filter,
                    SortKey::Id,
                    false,
                    EXPORT_BATCH,
                    &token,
                    now,
                )
                .await
                {
                    Ok(page) => page,
                    Err(e) => {
                        let _ = tx.send(Err(crate::error::to_status(e))).await;
                        return;
                    }
                };
                for row in page.rows {
                    let msg = pb::ExportPortfolioResponse {
                        project: Some(row_out(row, currency, now)),
                    };
                    if tx.send(Ok(msg)).await.is_err() {
                        return;
                    }
                }
                if page.next_page_token.is_empty() {
                    return;
                }
                token = page.next_page_token;
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}
