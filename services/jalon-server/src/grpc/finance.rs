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
    finance::{self, Cost, CostOutcome, CostTarget, NewCost, Original, Reverses},
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
    cost_object_kind_in,
    cost_object_kind_out,
    pb::CostObjectKind,
    jalon_core::finance::CostObjectKind,
    "COST_OBJECT_KIND_"
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
    let original_amount = match (c.original_amount_minor, c.original_currency.as_deref()) {
        (Some(m), Some(cur)) => CurrencyCode::parse(cur)
            .ok()
            .map(|cur| conv::money_out(Money::from_minor(m, cur))),
        _ => None,
    };
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
        source: c.source,
        posting_period: c.posting_period,
        original_amount,
        exchange_rate: c.exchange_rate.unwrap_or_default(),
        rate_date: date_out(c.rate_date),
        reverses_source: String::new(),
        reverses_external_ref: String::new(),
        reverses_cost_id: c
            .reverses_cost_id
            .map(|i| i.to_string())
            .unwrap_or_default(),
        project_ref: String::new(),
    }
}

/// A source named on the wire: empty is none ("manual").
fn source_in(raw: &str) -> Result<Option<String>, String> {
    if raw.is_empty() {
        Ok(None)
    } else {
        jalon_core::finance::parse_source_name(raw).map(Some)
    }
}

/// A period named on the wire: empty is none.
fn period_in(raw: &str) -> Result<Option<String>, String> {
    if raw.is_empty() {
        Ok(None)
    } else {
        jalon_core::finance::parse_period(raw).map(Some)
    }
}

/// The amount of a cost, in the organisation's currency: sent as such, or
/// converted from the original amount at the feed's rate (half-even to the
/// minor unit), with the original kept.
fn cost_amount(
    c: &pb::Cost,
    currency: CurrencyCode,
    f: &impl Fn(&str) -> String,
) -> Result<(Money, Option<Original>), (String, String)> {
    let Some(original) = c.original_amount.as_ref() else {
        if !c.exchange_rate.is_empty() {
            return Err((f("exchange_rate"), "is only for an original_amount".into()));
        }
        if c.rate_date.is_some() {
            return Err((f("rate_date"), "is only for an original_amount".into()));
        }
        let amount = c.amount.as_ref().ok_or_else(|| {
            (
                f("amount"),
                "is required (or original_amount, exchange_rate and rate_date)".into(),
            )
        })?;
        if amount.currency_code != currency.as_str() {
            return Err((
                f("amount"),
                format!(
                    "must be in the organisation's currency {currency}, not '{}': send the feed's amount as original_amount with exchange_rate and rate_date",
                    amount.currency_code
                ),
            ));
        }
        return Money::parse(&amount.amount, currency)
            .map(|m| (m, None))
            .map_err(|e| (f("amount"), e));
    };
    let original_currency = CurrencyCode::parse(&original.currency_code)
        .map_err(|e| (f("original_amount.currency_code"), e))?;
    if original_currency == currency {
        return Err((
            f("original_amount"),
            format!("is in the organisation's currency {currency}: send it as amount"),
        ));
    }
    let original_amount =
        Money::parse(&original.amount, original_currency).map_err(|e| (f("original_amount"), e))?;
    if c.exchange_rate.is_empty() {
        return Err((
            f("exchange_rate"),
            format!(
                "is required with an original_amount in {original_currency} (no rate is looked up)"
            ),
        ));
    }
    let rate =
        jalon_core::finance::parse_rate(&c.exchange_rate).map_err(|e| (f("exchange_rate"), e))?;
    let rate_date = date_in(c.rate_date.as_ref())
        .and_then(|v| v.ok_or_else(|| "is required with an original_amount".into()))
        .map_err(|e| (f("rate_date"), e))?;
    let amount = jalon_core::finance::convert(original_amount.amount(), rate, currency)
        .map_err(|e| (f("original_amount"), e))?;
    if let Some(sent) = c.amount.as_ref() {
        let same = sent.currency_code == currency.as_str()
            && Money::parse(&sent.amount, currency).is_ok_and(|m| m == amount);
        if !same {
            return Err((
                f("amount"),
                format!(
                    "leave it empty with an original_amount (the conversion gives {amount} {currency})"
                ),
            ));
        }
    }
    Ok((
        amount,
        Some(Original {
            amount: original_amount,
            rate,
            rate_date,
        }),
    ))
}

/// `value`, which must be there when `needed`.
fn required_unless<T>(value: Option<T>, needed: bool) -> Result<Option<T>, String> {
    if needed && value.is_none() {
        Err("is required".into())
    } else {
        Ok(value)
    }
}

/// A wire cost to a new one, or the first bad field.
fn new_cost(
    c: &pb::Cost,
    currency: CurrencyCode,
    prefix: &str,
) -> Result<NewCost, (String, String)> {
    let f = |n: &str| format!("{prefix}{n}");
    let target = match (c.project_id.is_empty(), c.project_ref.is_empty()) {
        (false, false) => {
            return Err((
                f("project_ref"),
                "give project_id or project_ref, not both".into(),
            ));
        }
        (false, true) => CostTarget::Project(
            jalon_core::values::parse_id(&c.project_id).map_err(|e| (f("project_id"), e))?,
        ),
        (true, false) => CostTarget::Reference(
            jalon_core::values::free_text(&c.project_ref, COST_OBJECT_MAX_CHARS)
                .map_err(|e| (f("project_ref"), e))?,
        ),
        (true, true) => CostTarget::Unnamed,
    };
    let reverses = if c.reverses_external_ref.is_empty() {
        if !c.reverses_source.is_empty() {
            return Err((
                f("reverses_source"),
                "is only for a reversal (with reverses_external_ref)".into(),
            ));
        }
        None
    } else {
        Some(Reverses {
            source: source_in(&c.reverses_source).map_err(|e| (f("reverses_source"), e))?,
            external_ref: jalon_core::values::free_text(&c.reverses_external_ref, 200)
                .map_err(|e| (f("reverses_external_ref"), e))?,
        })
    };
    let (amount, original) = cost_amount(c, currency, &f)?;
    if amount.minor_units() < 0 && reverses.is_none() {
        return Err((
            f("amount"),
            "must not be negative: a negative amount is a reversal and names the line it reverses (reverses_external_ref); credits are not modelled".into(),
        ));
    }
    if amount.minor_units() >= 0 && reverses.is_some() {
        return Err((f("amount"), "a reversal's amount must be negative".into()));
    }
    // A reversal takes them from the reversed line.
    let needed = reverses.is_none();
    let category = category_in(c.category)
        .and_then(|v| required_unless(v, needed))
        .map_err(|e| (f("category"), e))?;
    let nature = nature_in(c.nature)
        .and_then(|v| required_unless(v, needed))
        .map_err(|e| (f("nature"), e))?;
    let incurred_on = date_in(c.incurred_on.as_ref())
        .and_then(|v| required_unless(v, needed))
        .map_err(|e| (f("incurred_on"), e))?;
    let phase = phase_in(c.phase).map_err(|e| (f("phase"), e))?;
    let cost_centre = jalon_core::finance::parse_cost_centre(&c.cost_centre)
        .map_err(|e| (f("cost_centre"), e))?;
    let description =
        jalon_core::project::parse_long_text(&c.description).map_err(|e| (f("description"), e))?;
    let external_ref =
        jalon_core::values::free_text(&c.external_ref, 200).map_err(|e| (f("external_ref"), e))?;
    let source = source_in(&c.source).map_err(|e| (f("source"), e))?;
    let posting_period = period_in(&c.posting_period).map_err(|e| (f("posting_period"), e))?;
    Ok(NewCost {
        target,
        amount,
        original,
        category,
        nature,
        incurred_on,
        cost_centre,
        phase,
        description,
        external_ref: (!external_ref.is_empty()).then_some(external_ref),
        source,
        posting_period,
        reverses,
    })
}

/// Longest cost object reference, in characters.
const COST_OBJECT_MAX_CHARS: usize = 100;

/// Most rows of a RecordCosts call.
pub const RECORD_COSTS_MAX_ROWS: usize = 1_000;

impl FinanceApi {
    /// Closes (`closed`) or reopens an organisation's accounting period:
    /// `ClosePeriod` and `ReopenPeriod`.
    async fn set_period<T>(
        &self,
        request: &Request<T>,
        organisation_id: &str,
        period: &str,
        closed: bool,
    ) -> Result<pb::CostPeriod, Status> {
        let caller = caller(request)?;
        let org = conv::id("organisation_id", organisation_id).or_status()?;
        let period = jalon_core::finance::parse_period(period)
            .map_err(|e| Error::invalid("period", e))
            .or_status()?;
        let stored = jalon_store::feeds::set_period(
            self.store.db(),
            org,
            &requester(&caller),
            &period,
            closed,
        )
        .await
        .or_status()?;
        Ok(period_to_proto(stored))
    }

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
    /// ImportCosts or RecordCosts.
    action: Action,
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
            action: Action::ImportCosts,
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
            session.action,
            rows,
            false,
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
            false,
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
                jalon_core::finance::parse_cost_centre(&req.cost_centre),
            )
            .filter(|c| !c.is_empty());
        if let (Some(from), Some(to)) = (from, to)
            && from > to
        {
            v.check::<()>("incurred_to", Err("is before incurred_from".into()));
        }
        let posting_period = v
            .check("posting_period", period_in(&req.posting_period))
            .flatten();
        let source = v.check("source", source_in(&req.source)).flatten();
        v.finish().or_status()?;
        let filter = finance::CostFilter {
            from,
            to,
            category,
            cost_centre,
            posting_period,
            source,
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
        Ok(Response::new(import_response(summary)))
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
        let by_centre = finance::cost_by_cost_centre(self.store.db(), org, project_id)
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
            cost_by_month: f
                .cost_by_month
                .into_iter()
                .map(|(m, a)| pb::MonthAmount {
                    month: date_out(Some(m)),
                    amount: Some(conv::money_out(a)),
                })
                .collect(),
            cost_by_cost_centre: by_centre
                .into_iter()
                .map(|(c, a)| pb::CostCentreAmount {
                    cost_centre: c,
                    amount: Some(conv::money_out(Money::from_minor(a, currency))),
                })
                .collect(),
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn record_costs(
        &self,
        request: Request<pb::RecordCostsRequest>,
    ) -> Result<Response<pb::RecordCostsResponse>, Status> {
        let caller = caller(&request)?;
        let extensions = request.extensions().clone();
        let req = request.into_inner();
        let org = conv::id("organisation_id", &req.organisation_id).or_status()?;
        if req.costs.is_empty() || req.costs.len() > RECORD_COSTS_MAX_ROWS {
            return Err(Error::invalid(
                "costs",
                format!(
                    "holds {} rows: from 1 to {RECORD_COSTS_MAX_ROWS} a call (stream more with ImportCosts)",
                    req.costs.len()
                ),
            ))
            .or_status();
        }
        let currency = self
            .currency_for(&caller, Action::RecordCosts, org)
            .await
            .or_status()?;
        let session = CostSession {
            currency,
            caller: requester(&caller),
            action: Action::RecordCosts,
        };
        let summary = import::run_rows(self, &session, &extensions, org, req.costs, self.imports)
            .await
            .or_status()?;
        let r = import_response(summary);
        Ok(Response::new(pb::RecordCostsResponse {
            results: r.results,
            accepted: r.accepted,
            duplicates: r.duplicates,
            rejected: r.rejected,
            omitted_results: r.omitted_results,
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn correct_cost(
        &self,
        request: Request<pb::CorrectCostRequest>,
    ) -> Result<Response<pb::CorrectCostResponse>, Status> {
        let caller = caller(&request)?;
        let req = request.get_ref();
        let org = conv::id("organisation_id", &req.organisation_id).or_status()?;
        let currency = self
            .currency_for(&caller, Action::CorrectCost, org)
            .await
            .or_status()?;
        let mut v = jalon_core::error::Violations::new();
        let source = v.check("source", source_in(&req.source)).flatten();
        let external_ref = v.check(
            "external_ref",
            jalon_core::values::free_text(&req.external_ref, 200).and_then(|r| {
                if r.is_empty() {
                    Err("is required: the line to correct".into())
                } else {
                    Ok(r)
                }
            }),
        );
        let amount = match req.amount.as_ref() {
            None => None,
            Some(m) => v.check(
                "amount",
                money_in(Some(m), currency).and_then(|a| {
                    if a.minor_units() > 0 {
                        Ok(a)
                    } else {
                        Err("must be positive: how much of the line to reverse".into())
                    }
                }),
            ),
        };
        let reversal_external_ref = v
            .check(
                "reversal_external_ref",
                jalon_core::values::free_text(&req.reversal_external_ref, 200),
            )
            .filter(|r| !r.is_empty());
        let posting_period = v
            .check("posting_period", period_in(&req.posting_period))
            .flatten();
        let description = v.check(
            "description",
            jalon_core::project::parse_long_text(&req.description),
        );
        let replacement = match req.replacement.as_ref() {
            None => None,
            Some(c) => match new_cost(c, currency, "replacement.") {
                Ok(r) if r.reverses.is_some() => {
                    v.check::<()>(
                        "replacement.reverses_external_ref",
                        Err("a replacement is a new line, not a reversal".into()),
                    );
                    None
                }
                Ok(r) => Some(r),
                Err((field, why)) => {
                    v.check::<()>(&field, Err(why));
                    None
                }
            },
        };
        v.finish().or_status()?;
        let (Some(external_ref), Some(description)) = (external_ref, description) else {
            return Err(Error::invalid("external_ref", "is invalid")).or_status();
        };
        let with_replacement = replacement.is_some();
        let outcomes = finance::correct_cost(
            self.store.db(),
            org,
            &requester(&caller),
            currency,
            finance::Correction {
                source,
                external_ref,
                amount,
                reversal_external_ref,
                posting_period,
                description,
                replacement,
            },
        )
        .await
        .or_status()?;
        let mut outcomes = outcomes.into_iter();
        let (reversal, duplicate) = match outcomes.next() {
            Some(CostOutcome::Accepted(c)) => (c, false),
            Some(CostOutcome::Duplicate(c)) => (c, true),
            Some(CostOutcome::Rejected(e)) => return Err(to_status(e)),
            None => {
                return Err(to_status(Error::Internal(
                    "no outcome for the reversal".into(),
                )));
            }
        };
        let replacement = match outcomes.next() {
            Some(CostOutcome::Accepted(c) | CostOutcome::Duplicate(c)) => Some(cost_to_proto(c)),
            Some(CostOutcome::Rejected(e)) => return Err(to_status(e)),
            None if with_replacement => {
                return Err(to_status(Error::Internal(
                    "no outcome for the replacement".into(),
                )));
            }
            None => None,
        };
        Ok(Response::new(pb::CorrectCostResponse {
            reversal: Some(cost_to_proto(reversal)),
            replacement,
            duplicate,
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn create_cost_source(
        &self,
        request: Request<pb::CreateCostSourceRequest>,
    ) -> Result<Response<pb::CreateCostSourceResponse>, Status> {
        let caller = caller(&request)?;
        let req = request.get_ref();
        let org = conv::id("organisation_id", &req.organisation_id).or_status()?;
        let wire = conv::required("source", req.source.as_ref()).or_status()?;
        let mut v = jalon_core::error::Violations::new();
        let name = v.check(
            "source.name",
            jalon_core::finance::parse_source_name(&wire.name),
        );
        let display_name = v.check(
            "source.display_name",
            jalon_core::values::free_text(&wire.display_name, 200),
        );
        v.finish().or_status()?;
        let (Some(name), Some(display_name)) = (name, display_name) else {
            return Err(Error::invalid("source", "is invalid")).or_status();
        };
        let stored = jalon_store::feeds::create_source(
            self.store.db(),
            org,
            &requester(&caller),
            &name,
            &display_name,
        )
        .await
        .or_status()?;
        Ok(Response::new(pb::CreateCostSourceResponse {
            source: Some(source_to_proto(stored)),
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn list_cost_sources(
        &self,
        request: Request<pb::ListCostSourcesRequest>,
    ) -> Result<Response<pb::ListCostSourcesResponse>, Status> {
        let caller = caller(&request)?;
        let org = conv::id("organisation_id", &request.get_ref().organisation_id).or_status()?;
        member(
            authorise(&self.store, &caller, Action::ListCostSources, org)
                .await
                .or_status()?,
        )
        .or_status()?;
        let sources = jalon_store::feeds::sources(self.store.db(), org)
            .await
            .or_status()?;
        let manual = pb::CostSource {
            name: jalon_core::finance::MANUAL_SOURCE.to_owned(),
            display_name: "Posted by hand or without a source".to_owned(),
            create_time: None,
        };
        Ok(Response::new(pb::ListCostSourcesResponse {
            sources: std::iter::once(manual)
                .chain(sources.into_iter().map(source_to_proto))
                .collect(),
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn close_period(
        &self,
        request: Request<pb::ClosePeriodRequest>,
    ) -> Result<Response<pb::ClosePeriodResponse>, Status> {
        let (org, period) = (
            &request.get_ref().organisation_id,
            &request.get_ref().period,
        );
        let period = self.set_period(&request, org, period, true).await?;
        Ok(Response::new(pb::ClosePeriodResponse {
            period: Some(period),
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn reopen_period(
        &self,
        request: Request<pb::ReopenPeriodRequest>,
    ) -> Result<Response<pb::ReopenPeriodResponse>, Status> {
        let (org, period) = (
            &request.get_ref().organisation_id,
            &request.get_ref().period,
        );
        let period = self.set_period(&request, org, period, false).await?;
        Ok(Response::new(pb::ReopenPeriodResponse {
            period: Some(period),
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn list_periods(
        &self,
        request: Request<pb::ListPeriodsRequest>,
    ) -> Result<Response<pb::ListPeriodsResponse>, Status> {
        let caller = caller(&request)?;
        let org = conv::id("organisation_id", &request.get_ref().organisation_id).or_status()?;
        member(
            authorise(&self.store, &caller, Action::ListPeriods, org)
                .await
                .or_status()?,
        )
        .or_status()?;
        let periods = jalon_store::feeds::periods(self.store.db(), org)
            .await
            .or_status()?;
        Ok(Response::new(pb::ListPeriodsResponse {
            periods: periods.into_iter().map(period_to_proto).collect(),
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn set_project_cost_objects(
        &self,
        request: Request<pb::SetProjectCostObjectsRequest>,
    ) -> Result<Response<pb::SetProjectCostObjectsResponse>, Status> {
        let caller = caller(&request)?;
        let req = request.get_ref();
        let org = conv::id("organisation_id", &req.organisation_id).or_status()?;
        let project_id = conv::id("project_id", &req.project_id).or_status()?;
        let mut v = jalon_core::error::Violations::new();
        if req.cost_objects.len() > MAX_COST_OBJECTS {
            v.check::<()>(
                "cost_objects",
                Err(format!("holds more than {MAX_COST_OBJECTS} cost objects")),
            );
        }
        let mut objects = Vec::new();
        for (i, o) in req.cost_objects.iter().enumerate() {
            let kind = v.check(
                &format!("cost_objects[{i}].kind"),
                cost_object_kind_in(o.kind).and_then(|k| k.ok_or_else(|| "is required".into())),
            );
            let reference = v.check(
                &format!("cost_objects[{i}].reference"),
                jalon_core::values::free_text(&o.reference, COST_OBJECT_MAX_CHARS).and_then(|r| {
                    if r.is_empty() {
                        Err("is required".into())
                    } else {
                        Ok(r)
                    }
                }),
            );
            if let (Some(kind), Some(reference)) = (kind, reference) {
                if objects.iter().any(|(_, r)| *r == reference) {
                    v.check::<()>(
                        &format!("cost_objects[{i}].reference"),
                        Err("appears twice".into()),
                    );
                } else {
                    objects.push((kind, reference));
                }
            }
        }
        v.finish().or_status()?;
        let stored = jalon_store::feeds::set_cost_objects(
            self.store.db(),
            org,
            &requester(&caller),
            project_id,
            &objects,
        )
        .await
        .or_status()?;
        Ok(Response::new(pb::SetProjectCostObjectsResponse {
            cost_objects: stored.into_iter().map(cost_object_to_proto).collect(),
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn list_cost_objects(
        &self,
        request: Request<pb::ListCostObjectsRequest>,
    ) -> Result<Response<pb::ListCostObjectsResponse>, Status> {
        let caller = caller(&request)?;
        let req = request.get_ref();
        let org = conv::id("organisation_id", &req.organisation_id).or_status()?;
        let project_id = if req.project_id.is_empty() {
            None
        } else {
            Some(conv::id("project_id", &req.project_id).or_status()?)
        };
        member(
            authorise(&self.store, &caller, Action::ListCostObjects, org)
                .await
                .or_status()?,
        )
        .or_status()?;
        let objects = jalon_store::feeds::cost_objects(self.store.db(), org, project_id)
            .await
            .or_status()?;
        Ok(Response::new(pb::ListCostObjectsResponse {
            cost_objects: objects.into_iter().map(cost_object_to_proto).collect(),
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn set_cost_centre_rule(
        &self,
        request: Request<pb::SetCostCentreRuleRequest>,
    ) -> Result<Response<pb::SetCostCentreRuleResponse>, Status> {
        let caller = caller(&request)?;
        let req = request.get_ref();
        let org = conv::id("organisation_id", &req.organisation_id).or_status()?;
        let rule = conv::required("rule", req.rule.as_ref()).or_status()?;
        let cost_centre = cost_centre_in("rule.cost_centre", &rule.cost_centre).or_status()?;
        let project_id = conv::id("rule.project_id", &rule.project_id).or_status()?;
        let stored = jalon_store::feeds::set_rule(
            self.store.db(),
            org,
            &requester(&caller),
            &cost_centre,
            project_id,
        )
        .await
        .or_status()?;
        Ok(Response::new(pb::SetCostCentreRuleResponse {
            rule: Some(rule_to_proto(stored)),
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn delete_cost_centre_rule(
        &self,
        request: Request<pb::DeleteCostCentreRuleRequest>,
    ) -> Result<Response<pb::DeleteCostCentreRuleResponse>, Status> {
        let caller = caller(&request)?;
        let req = request.get_ref();
        let org = conv::id("organisation_id", &req.organisation_id).or_status()?;
        let cost_centre = cost_centre_in("cost_centre", &req.cost_centre).or_status()?;
        jalon_store::feeds::delete_rule(self.store.db(), org, &requester(&caller), &cost_centre)
            .await
            .or_status()?;
        Ok(Response::new(pb::DeleteCostCentreRuleResponse {}))
    }

    #[tracing::instrument(skip_all)]
    async fn list_cost_centre_rules(
        &self,
        request: Request<pb::ListCostCentreRulesRequest>,
    ) -> Result<Response<pb::ListCostCentreRulesResponse>, Status> {
        let caller = caller(&request)?;
        let org = conv::id("organisation_id", &request.get_ref().organisation_id).or_status()?;
        member(
            authorise(&self.store, &caller, Action::ListCostCentreRules, org)
                .await
                .or_status()?,
        )
        .or_status()?;
        let rules = jalon_store::feeds::rules(self.store.db(), org)
            .await
            .or_status()?;
        Ok(Response::new(pb::ListCostCentreRulesResponse {
            rules: rules.into_iter().map(rule_to_proto).collect(),
        }))
    }
}

/// Most cost objects of a project.
const MAX_COST_OBJECTS: usize = 100;

/// A cost centre that must be there.
fn cost_centre_in(field: &str, raw: &str) -> Result<String> {
    let c = jalon_core::finance::parse_cost_centre(raw).map_err(|e| Error::invalid(field, e))?;
    if c.is_empty() {
        return Err(Error::invalid(field, "is required"));
    }
    Ok(c)
}

fn source_to_proto(s: jalon_store::feeds::CostSource) -> pb::CostSource {
    pb::CostSource {
        name: s.name,
        display_name: s.display_name,
        create_time: Some(conv::timestamp(s.create_time)),
    }
}

fn period_to_proto(p: jalon_store::feeds::CostPeriod) -> pb::CostPeriod {
    pb::CostPeriod {
        period: p.period,
        closed: p.closed,
        update_time: (!p.updated_by.is_empty()).then(|| conv::timestamp(p.update_time)),
        updated_by: p.updated_by,
    }
}

fn cost_object_to_proto(o: jalon_store::feeds::CostObject) -> pb::ProjectCostObject {
    pb::ProjectCostObject {
        kind: cost_object_kind_out(o.kind.parse().ok()),
        reference: o.reference,
        project_id: o.project_id.to_string(),
    }
}

fn rule_to_proto(r: jalon_store::feeds::CostCentreRule) -> pb::CostCentreRule {
    pb::CostCentreRule {
        cost_centre: r.cost_centre,
        project_id: r.project_id.to_string(),
        create_time: Some(conv::timestamp(r.create_time)),
    }
}

/// A summary of rows as ImportCosts answers it.
fn import_response(summary: import::Summary) -> pb::ImportCostsResponse {
    pb::ImportCostsResponse {
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
    }
}
