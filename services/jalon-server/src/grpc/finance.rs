//! `jalon.v1.FinanceService`.

use jalon_core::{
    Error, FieldViolation, Result,
    authz::Action,
    finance::{BenefitKind, CostCategory, CostNature},
    values::{CurrencyCode, Money},
};
use jalon_proto::v1::{self as pb, finance_service_server::FinanceService};
use jalon_store::{
    Store,
    finance::{self, Cost, CostOutcome, NewCost},
};
use tonic::{Request, Response, Status, Streaming};
use uuid::Uuid;

use super::{
    authorise, caller, check_standing, conversions as conv,
    import::{self, Import, ImportLimits, RowStatus},
    member,
    projects::{date_in, date_out, phase_in, phase_out},
    requester, visible_project,
};
use crate::{
    auth::Caller,
    error::{OrStatus, to_status},
};

wire_enum!(
    pub(crate) category_in,
    category_out,
    pb::CostCategory,
    CostCategory,
    "COST_CATEGORY_"
);
wire_enum!(
    nature_in,
    nature_out,
    pb::CostNature,
    CostNature,
    "COST_NATURE_"
);
wire_enum!(
    kind_in,
    kind_out,
    pb::BenefitKind,
    BenefitKind,
    "BENEFIT_KIND_"
);

/// The handlers of `FinanceService`.
#[derive(Clone)]
pub struct FinanceApi {
    pub store: Store,
    /// How much of an import's rows not accepted its answer carries.
    pub imports: ImportLimits,
}

/// An amount in the organisation's currency: another currency is refused,
/// never converted.
fn money_in(m: Option<&pb::Money>, currency: CurrencyCode) -> Result<Money, String> {
    let m = m.ok_or_else(|| "is required".to_owned())?;
    if m.currency_code != currency.as_str() {
        return Err(format!(
            "must be in the organisation's currency {currency}, not '{}' (no conversion is made)",
            m.currency_code
        ));
    }
    Money::parse(&m.amount, currency)
}

fn cost_to_proto(c: Cost) -> pb::Cost {
    let currency = CurrencyCode::parse(&c.currency).ok();
    pb::Cost {
        id: c.id.to_string(),
        project_id: c.project_id.to_string(),
        amount: currency.map(|cur| conv::money_out(Money::from_minor(c.amount_minor, cur))),
        category: category_out(c.category.parse().ok()),
        nature: nature_out(c.nature.parse().ok()),
        incurred_on: date_out(Some(c.incurred_on)),
        cost_centre: c.cost_centre,
        phase: phase_out(c.phase.parse().ok()),
        description: c.description,
        external_ref: c.external_ref.unwrap_or_default(),
        create_time: Some(conv::timestamp(c.create_time)),
    }
}

/// A wire cost to a new one, or the first bad field.
fn new_cost(
    c: &pb::Cost,
    currency: CurrencyCode,
    prefix: &str,
) -> Result<NewCost, (String, String)> {
    let f = |n: &str| format!("{prefix}{n}");
    let project_id =
        jalon_core::values::parse_id(&c.project_id).map_err(|e| (f("project_id"), e))?;
    let amount = money_in(c.amount.as_ref(), currency).map_err(|e| (f("amount"), e))?;
    if amount.minor_units() < 0 {
        return Err((
            f("amount"),
            "must not be negative (post a benefit or a correction instead)".into(),
        ));
    }
    let category = category_in(c.category)
        .and_then(|v| v.ok_or_else(|| "is required".into()))
        .map_err(|e| (f("category"), e))?;
    let nature = nature_in(c.nature)
        .and_then(|v| v.ok_or_else(|| "is required".into()))
        .map_err(|e| (f("nature"), e))?;
    let incurred_on = date_in(c.incurred_on.as_ref())
        .and_then(|v| v.ok_or_else(|| "is required".into()))
        .map_err(|e| (f("incurred_on"), e))?;
    let phase = phase_in(c.phase).map_err(|e| (f("phase"), e))?;
    let cost_centre = jalon_core::values::free_text(&c.cost_centre, COST_CENTRE_MAX_CHARS)
        .map_err(|e| (f("cost_centre"), e))?;
    let description =
        jalon_core::project::parse_long_text(&c.description).map_err(|e| (f("description"), e))?;
    let external_ref =
        jalon_core::values::free_text(&c.external_ref, 200).map_err(|e| (f("external_ref"), e))?;
    Ok(NewCost {
        project_id,
        amount,
        category,
        nature,
        incurred_on,
        cost_centre,
        phase,
        description,
        external_ref: (!external_ref.is_empty()).then_some(external_ref),
    })
}

/// Longest cost centre, in characters.
const COST_CENTRE_MAX_CHARS: usize = 100;

impl FinanceApi {
    /// The role table's rule for `action`, and the organisation's currency
    /// (what a request's amounts are parsed in), read in one statement. The
    /// change re-reads the membership inside its transaction.
    async fn currency_for(
        &self,
        caller: &Caller,
        action: Action,
        org: Uuid,
    ) -> Result<CurrencyCode> {
        let (membership, o) =
            jalon_store::organisations::get_as_member(self.store.readers(), org, &caller.subject)
                .await?;
        check_standing(caller, action, membership.as_ref())?;
        member(membership)?;
        let o = o.ok_or(Error::NotFound {
            resource: "organisation",
        })?;
        CurrencyCode::parse(&o.default_currency).map_err(Error::Internal)
    }

    async fn organisation(&self, org: Uuid) -> Result<(CurrencyCode, rust_decimal::Decimal)> {
        let o = jalon_store::organisations::get(self.store.db(), org).await?;
        let currency = CurrencyCode::parse(&o.default_currency).map_err(Error::Internal)?;
        let rate = jalon_core::values::DiscountRate::parse(&o.discount_rate)
            .map_err(Error::Internal)?
            .value();
        Ok((currency, rate))
    }
}

/// The caller's standing for a cost import: checked once, on the first
/// message.
pub struct CostSession {
    currency: CurrencyCode,
    caller: jalon_store::change::Caller,
}

impl Import for FinanceApi {
    type Message = pb::ImportCostsRequest;
    type Wire = pb::Cost;
    type Row = NewCost;
    type Session = CostSession;

    const KIND: &'static str = "cost";

    fn organisation_id(message: &pb::ImportCostsRequest) -> &str {
        &message.organisation_id
    }

    fn rows(message: pb::ImportCostsRequest) -> Vec<pb::Cost> {
        message.costs
    }

    async fn open(&self, caller: &Caller, org: Uuid) -> Result<CostSession> {
        let currency = self.currency_for(caller, Action::ImportCosts, org).await?;
        Ok(CostSession {
            currency,
            caller: requester(caller),
        })
    }

    fn parse(session: &CostSession, wire: &pb::Cost) -> Result<NewCost, (String, String)> {
        new_cost(wire, session.currency, "")
    }

    /// The adapter to the store's batch call.
    async fn write(
        &self,
        session: &CostSession,
        org: Uuid,
        rows: &[NewCost],
    ) -> Result<Vec<import::Outcome>> {
        let outcomes = finance::record_costs(
            self.store.db(),
            org,
            &session.caller,
            Action::ImportCosts,
            rows,
        )
        .await?;
        Ok(outcomes
            .into_iter()
            .map(|outcome| match outcome {
                CostOutcome::Accepted(_) => import::Outcome::Accepted,
                CostOutcome::Duplicate(c) => import::Outcome::Duplicate(c.id),
                CostOutcome::Rejected(e) => import::Outcome::Rejected(e),
            })
            .collect())
    }
}

#[tonic::async_trait]
impl FinanceService for FinanceApi {
    #[tracing::instrument(skip_all)]
    async fn record_cost(
        &self,
        request: Request<pb::RecordCostRequest>,
    ) -> Result<Response<pb::RecordCostResponse>, Status> {
        let caller = caller(&request)?;
        let req = request.get_ref();
        let org = conv::id("organisation_id", &req.organisation_id).or_status()?;
        let wire = conv::required("cost", req.cost.as_ref()).or_status()?;
        let currency = self
            .currency_for(&caller, Action::RecordCost, org)
            .await
            .or_status()?;
        let new = new_cost(wire, currency, "cost.")
            .map_err(|(f, why)| Error::invalid(f, why))
            .or_status()?;
        let outcomes = finance::record_costs(
            self.store.db(),
            org,
            &requester(&caller),
            Action::RecordCost,
            &[new],
        )
        .await
        .or_status()?;
        match outcomes.into_iter().next() {
            Some(CostOutcome::Accepted(c)) => Ok(Response::new(pb::RecordCostResponse {
                cost: Some(cost_to_proto(c)),
                duplicate: false,
            })),
            Some(CostOutcome::Duplicate(c)) => Ok(Response::new(pb::RecordCostResponse {
                cost: Some(cost_to_proto(c)),
                duplicate: true,
            })),
            Some(CostOutcome::Rejected(e)) => Err(to_status(e)),
            None => Err(to_status(Error::Internal("no outcome for the cost".into()))),
        }
    }

    #[tracing::instrument(skip_all)]
    async fn list_costs(
        &self,
        request: Request<pb::ListCostsRequest>,
    ) -> Result<Response<pb::ListCostsResponse>, Status> {
        let caller = caller(&request)?;
        let req = request.get_ref();
        let org = conv::id("organisation_id", &req.organisation_id).or_status()?;
        let project_id = conv::id("project_id", &req.project_id).or_status()?;
        let mut v = jalon_core::error::Violations::new();
        let size = v.check(
            "page_size",
            jalon_core::values::parse_page_size(
                req.page_size,
                jalon_core::values::DEFAULT_PAGE_SIZE,
                jalon_core::values::MAX_PAGE_SIZE,
            ),
        );
        let from = v
            .check("incurred_from", date_in(req.incurred_from.as_ref()))
            .flatten();
        let to = v
            .check("incurred_to", date_in(req.incurred_to.as_ref()))
            .flatten();
        let category = v.check("category", category_in(req.category)).flatten();
        let cost_centre = v
            .check(
                "cost_centre",
                jalon_core::values::free_text(&req.cost_centre, COST_CENTRE_MAX_CHARS),
            )
            .filter(|c| !c.is_empty());
        if let (Some(from), Some(to)) = (from, to)
            && from > to
        {
            v.check::<()>("incurred_to", Err("is before incurred_from".into()));
        }
        v.finish().or_status()?;
        let filter = finance::CostFilter {
            from,
            to,
            category,
            cost_centre,
        };
        let after =
            jalon_store::page::decode(&req.page_token, &filter.key(project_id), "page_token")
                .or_status()?;
        let membership = member(
            authorise(&self.store, &caller, Action::ListCosts, org)
                .await
                .or_status()?,
        )
        .or_status()?;
        visible_project(&self.store, &membership, org, project_id)
            .await
            .or_status()?;
        let page = finance::costs(
            self.store.db(),
            org,
            project_id,
            &filter,
            size.unwrap_or(jalon_core::values::DEFAULT_PAGE_SIZE),
            after,
        )
        .await
        .or_status()?;
        Ok(Response::new(pb::ListCostsResponse {
            costs: page.items.into_iter().map(cost_to_proto).collect(),
            next_page_token: page.next_page_token,
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn import_costs(
        &self,
        request: Request<Streaming<pb::ImportCostsRequest>>,
    ) -> Result<Response<pb::ImportCostsResponse>, Status> {
        let caller = caller(&request)?;
        let extensions = request.extensions().clone();
        let summary = import::run(
            self,
            &caller,
            &extensions,
            request.into_inner(),
            self.imports,
        )
        .await?;
        Ok(Response::new(pb::ImportCostsResponse {
            results: summary
                .results
                .into_iter()
                .map(|r| pb::ImportCostResult {
                    row: r.row,
                    status: match r.status {
                        RowStatus::Duplicate => pb::ImportCostStatus::Duplicate,
                        RowStatus::Rejected => pb::ImportCostStatus::Rejected,
                    } as i32,
                    id: r.id,
                    reason: r.reason,
                    field: r.field,
                })
                .collect(),
            accepted: summary.accepted,
            duplicates: summary.duplicates,
            rejected: summary.rejected,
            omitted_results: summary.omitted,
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn set_budget(
        &self,
        request: Request<pb::SetBudgetRequest>,
    ) -> Result<Response<pb::SetBudgetResponse>, Status> {
        let caller = caller(&request)?;
        let req = request.get_ref();
        let org = conv::id("organisation_id", &req.organisation_id).or_status()?;
        let project_id = conv::id("project_id", &req.project_id).or_status()?;
        let currency = self
            .currency_for(&caller, Action::SetBudget, org)
            .await
            .or_status()?;
        let mut violations = Vec::new();
        let total = money_in(req.total.as_ref(), currency)
            .map_err(|e| violations.push(FieldViolation::new("total", e)))
            .ok();
        if total.is_some_and(|t| t.minor_units() < 0) {
            violations.push(FieldViolation::new("total", "must not be negative"));
        }
        let mut lines = Vec::new();
        for (i, line) in req.by_category.iter().enumerate() {
            let category =
                category_in(line.category).and_then(|v| v.ok_or_else(|| "is required".into()));
            let amount = money_in(line.amount.as_ref(), currency);
            match (category, amount) {
                (Ok(c), Ok(a)) if a.minor_units() >= 0 && !lines.iter().any(|(x, _)| *x == c) => {
                    lines.push((c, a))
                }
                (Ok(_), Ok(a)) if a.minor_units() < 0 => violations.push(FieldViolation::new(
                    format!("by_category[{i}].amount"),
                    "must not be negative",
                )),
                (Ok(_), Ok(_)) => violations.push(FieldViolation::new(
                    format!("by_category[{i}].category"),
                    "appears twice",
                )),
                (Err(e), _) => {
                    violations.push(FieldViolation::new(format!("by_category[{i}].category"), e))
                }
                (_, Err(e)) => {
                    violations.push(FieldViolation::new(format!("by_category[{i}].amount"), e))
                }
            }
        }
        let (Some(total), true) = (total, violations.is_empty()) else {
            return Err(Error::InvalidArgument(violations)).or_status();
        };
        let stored = finance::set_budget(
            self.store.db(),
            org,
            project_id,
            total,
            &lines,
            &requester(&caller),
        )
        .await
        .or_status()?;
        Ok(Response::new(pb::SetBudgetResponse {
            total: Some(conv::money_out(stored.total)),
            by_category: stored
                .by_category
                .into_iter()
                .map(|(c, m)| pb::CategoryAmount {
                    category: category_out(Some(c)),
                    amount: Some(conv::money_out(m)),
                })
                .collect(),
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn record_benefit(
        &self,
        request: Request<pb::RecordBenefitRequest>,
    ) -> Result<Response<pb::RecordBenefitResponse>, Status> {
        let caller = caller(&request)?;
        let req = request.get_ref();
        let org = conv::id("organisation_id", &req.organisation_id).or_status()?;
        let wire = conv::required("benefit", req.benefit.as_ref()).or_status()?;
        let project_id = conv::id("benefit.project_id", &wire.project_id).or_status()?;
        let currency = self
            .currency_for(&caller, Action::RecordBenefit, org)
            .await
            .or_status()?;
        let mut v = jalon_core::error::Violations::new();
        let kind = v.check(
            "benefit.kind",
            kind_in(wire.kind).and_then(|k| k.ok_or_else(|| "is required".into())),
        );
        let amount = v.check(
            "benefit.amount",
            money_in(wire.amount.as_ref(), currency)
                .and_then(jalon_core::finance::check_benefit_amount),
        );
        let date = v.check(
            "benefit.date",
            date_in(wire.date.as_ref()).and_then(|d| d.ok_or_else(|| "is required".into())),
        );
        let description = v.check(
            "benefit.description",
            jalon_core::project::parse_long_text(&wire.description),
        );
        v.finish().or_status()?;
        let (Some(kind), Some(amount), Some(date), Some(description)) =
            (kind, amount, date, description)
        else {
            return Err(Error::invalid("benefit", "is invalid")).or_status();
        };
        let stored = finance::record_benefit(
            self.store.db(),
            org,
            project_id,
            kind,
            amount,
            date,
            &description,
            &requester(&caller),
        )
        .await
        .or_status()?;
        Ok(Response::new(pb::RecordBenefitResponse {
            benefit: Some(pb::Benefit {
                id: stored.id.to_string(),
                project_id: stored.project_id.to_string(),
                kind: kind_out(Some(kind)),
                amount: Some(conv::money_out(amount)),
                date: date_out(Some(date)),
                description,
                derived: false,
            }),
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn list_benefits(
        &self,
        request: Request<pb::ListBenefitsRequest>,
    ) -> Result<Response<pb::ListBenefitsResponse>, Status> {
        let caller = caller(&request)?;
        let req = request.get_ref();
        let org = conv::id("organisation_id", &req.organisation_id).or_status()?;
        let project_id = conv::id("project_id", &req.project_id).or_status()?;
        let membership = member(
            authorise(&self.store, &caller, Action::ListBenefits, org)
                .await
                .or_status()?,
        )
        .or_status()?;
        visible_project(&self.store, &membership, org, project_id)
            .await
            .or_status()?;
        let recorded = finance::benefits(self.store.db(), org, project_id)
            .await
            .or_status()?;
        let derived = finance::derived_benefits(self.store.db(), org, project_id)
            .await
            .or_status()?;
        Ok(Response::new(pb::ListBenefitsResponse {
            recorded: recorded
                .into_iter()
                .map(|b| pb::Benefit {
                    id: b.id.to_string(),
                    project_id: b.project_id.to_string(),
                    kind: kind_out(b.kind.parse().ok()),
                    amount: CurrencyCode::parse(&b.currency)
                        .ok()
                        .map(|c| conv::money_out(Money::from_minor(b.amount_minor, c))),
                    date: date_out(Some(b.benefit_date)),
                    description: b.description,
                    derived: false,
                })
                .collect(),
            derived: derived
                .into_iter()
                .map(|(name, date, amount)| pb::Benefit {
                    id: String::new(),
                    project_id: project_id.to_string(),
                    kind: pb::BenefitKind::Savings as i32,
                    amount: Some(conv::money_out(amount)),
                    date: date_out(Some(date)),
                    description: name,
                    derived: true,
                })
                .collect(),
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn get_project_financials(
        &self,
        request: Request<pb::GetProjectFinancialsRequest>,
    ) -> Result<Response<pb::GetProjectFinancialsResponse>, Status> {
        let caller = caller(&request)?;
        let req = request.get_ref();
        let org = conv::id("organisation_id", &req.organisation_id).or_status()?;
        let project_id = conv::id("project_id", &req.project_id).or_status()?;
        let membership = member(
            authorise(&self.store, &caller, Action::GetProjectFinancials, org)
                .await
                .or_status()?,
        )
        .or_status()?;
        visible_project(&self.store, &membership, org, project_id)
            .await
            .or_status()?;
        let (currency, rate) = self.organisation(org).await.or_status()?;
        let f = finance::financials(self.store.db(), org, project_id, currency, rate)
            .await
            .or_status()?;
        let mut kpi_gains = Vec::new();
        for k in jalon_store::kpis::list(self.store.db(), org, project_id, None, false)
            .await
            .or_status()?
        {
            let measurements = jalon_store::kpis::measurements(self.store.db(), k.id, None)
                .await
                .or_status()?;
            let r = jalon_core::kpi::result(&k, &measurements);
            kpi_gains.push(pb::KpiGain {
                kpi_id: k.id.to_string(),
                name: k.name,
                unit: k.unit,
                baseline: r.baseline,
                current: r.current,
                absolute_change: r.absolute_change,
                relative_change: r.relative_change,
                target_met: r.target_met,
                significance_known: r.significance.is_some(),
                significant: r.significance.is_some_and(|s| s.significant),
            });
        }
        Ok(Response::new(pb::GetProjectFinancialsResponse {
            currency_code: currency.as_str().to_owned(),
            total_cost: Some(conv::money_out(f.total_cost)),
            cost_by_category: f
                .cost_by_category
                .into_iter()
                .map(|(c, m)| pb::CategoryAmount {
                    category: category_out(Some(c)),
                    amount: Some(conv::money_out(m)),
                })
                .collect(),
            cost_by_phase: f
                .cost_by_phase
                .into_iter()
                .map(|(p, m)| pb::PhaseAmount {
                    phase: phase_out(Some(p)),
                    amount: Some(conv::money_out(m)),
                })
                .collect(),
            recorded_benefit: Some(conv::money_out(f.recorded_benefit)),
            derived_benefit: Some(conv::money_out(f.derived_benefit)),
            net_value: Some(conv::money_out(f.net_value)),
            roi: jalon_core::finance::roi_text(f.roi),
            payback_month: date_out(f.payback_month),
            npv: Some(conv::money_out(f.npv)),
            budget: f.budget.map(conv::money_out),
            budget_variance: f.budget_variance.map(conv::money_out),
            budget_by_category: f
                .budget_by_category
                .into_iter()
                .map(|(c, b, v)| pb::CategoryVariance {
                    category: category_out(Some(c)),
                    budget: Some(conv::money_out(b)),
                    variance: Some(conv::money_out(v)),
                })
                .collect(),
            kpi_gains,
        }))
    }
}
