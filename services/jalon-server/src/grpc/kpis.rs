//! `jalon.v1.KpiService`.

use std::str::FromStr;

use chrono::DateTime;
use jalon_core::{
    Error, FieldViolation, Result,
    authz::Action,
    kpi::{self, Cadence, Category, Direction, Kpi, Measurement, Source, Stage, UnitKind},
    project::Project,
    values::{CurrencyCode, DisplayName, Money, ShortText},
};
use jalon_proto::v1::{self as pb, kpi_service_server::KpiService};
use jalon_store::{
    Store,
    kpis::{self, NewMeasurement, Outcome},
    people::Membership,
};
use prost_types::Timestamp;
use rust_decimal::Decimal;
use tonic::{Request, Response, Status, Streaming};
use uuid::Uuid;

use super::{
    authorise, caller, conversions as conv,
    import::{self, Import, ImportLimits, RowStatus},
    member,
    projects::{date_in, date_out},
    requester, visible, visible_project,
};
use crate::{
    auth::Caller,
    error::{OrStatus, to_status},
};

wire_enum!(unit_in, unit_out, pb::UnitKind, UnitKind, "UNIT_KIND_");
wire_enum!(
    direction_in,
    direction_out,
    pb::Direction,
    Direction,
    "DIRECTION_"
);
wire_enum!(
    category_in,
    category_out,
    pb::KpiCategory,
    Category,
    "KPI_CATEGORY_"
);
wire_enum!(cadence_in, cadence_out, pb::Cadence, Cadence, "CADENCE_");
wire_enum!(stage_in, stage_out, pb::Stage, Stage, "STAGE_");
wire_enum!(
    source_in,
    source_out,
    pb::MeasurementSource,
    Source,
    "MEASUREMENT_SOURCE_"
);

/// The handlers of `KpiService`.
#[derive(Clone)]
pub struct KpiApi {
    pub store: Store,
    /// How much of an import's rows not accepted its answer carries.
    pub imports: ImportLimits,
}

pub fn kpi_to_proto(k: Kpi) -> pb::Kpi {
    pb::Kpi {
        id: k.id.to_string(),
        project_id: k.project_id.to_string(),
        name: k.name,
        description: k.description,
        unit: k.unit,
        unit_kind: unit_out(Some(k.unit_kind)),
        direction: direction_out(Some(k.direction)),
        category: category_out(Some(k.category)),
        primary: k.primary,
        target: k.target,
        measurement_method: k.method,
        cadence: cadence_out(k.cadence),
        value_per_unit: k.value_per_unit.map(conv::money_out),
        volume_per_period: k
            .volume_per_period
            .map(|v| v.normalize().to_string())
            .unwrap_or_default(),
        archived: k.archived,
        create_time: Some(conv::timestamp(k.create_time)),
        update_time: Some(conv::timestamp(k.update_time)),
        etag: jalon_core::organisation::etag(k.version),
    }
}

fn measurement_to_proto(m: Measurement) -> pb::Measurement {
    pb::Measurement {
        id: m.id.to_string(),
        kpi_id: m.kpi_id.to_string(),
        value: m.value,
        measure_time: Some(conv::timestamp(m.measure_time)),
        period_start: date_out(m.period_start),
        period_end: date_out(m.period_end),
        stage: stage_out(Some(m.stage)),
        sample_size: m.sample_size.and_then(|n| i64::try_from(n).ok()),
        std_dev: m.std_dev,
        source: source_out(Some(m.source)),
        external_ref: m.external_ref.unwrap_or_default(),
        late_baseline: m.late_baseline,
    }
}

fn required<T>(field: &str, parsed: Result<Option<T>, String>) -> Result<T, String> {
    let _ = field;
    parsed.and_then(|v| v.ok_or_else(|| "is required".to_owned()))
}

/// The KPI fields the update mask may name.
const UPDATABLE: &[&str] = &[
    "name",
    "description",
    "unit",
    "unit_kind",
    "direction",
    "category",
    "primary",
    "target",
    "measurement_method",
    "cadence",
    "value_per_unit",
    "volume_per_period",
];

/// Sets `path` of `k` from the wire, or says what is wrong.
fn set_field(k: &mut Kpi, path: &str, w: &pb::Kpi, currency: CurrencyCode) -> Result<(), String> {
    match path {
        "name" => k.name = DisplayName::parse(&w.name)?.as_str().to_owned(),
        "description" => k.description = jalon_core::project::parse_long_text(&w.description)?,
        "unit" => {
            let unit = ShortText::parse(&w.unit)?;
            if unit.as_str().is_empty() {
                return Err("is required".into());
            }
            k.unit = unit.as_str().to_owned();
        }
        "unit_kind" => k.unit_kind = required(path, unit_in(w.unit_kind))?,
        "direction" => k.direction = required(path, direction_in(w.direction))?,
        "category" => k.category = required(path, category_in(w.category))?,
        "primary" => k.primary = w.primary,
        "target" => {
            if w.target.is_some_and(|t| !t.is_finite()) {
                return Err("must be a finite number".into());
            }
            k.target = w.target;
        }
        "measurement_method" => {
            k.method = jalon_core::project::parse_long_text(&w.measurement_method)?
        }
        "cadence" => k.cadence = cadence_in(w.cadence)?,
        "value_per_unit" => {
            k.value_per_unit = match &w.value_per_unit {
                None => None,
                Some(m) if m.currency_code != currency.as_str() => {
                    return Err(format!(
                        "must be in the organisation's currency {currency}, not '{}'",
                        m.currency_code
                    ));
                }
                Some(m) => Some(Money::parse(&m.amount, currency)?),
            }
        }
        "volume_per_period" => {
            k.volume_per_period = if w.volume_per_period.is_empty() {
                None
            } else {
                let v = Decimal::from_str(w.volume_per_period.trim())
                    .map_err(|_| format!("'{}' is not a decimal number", w.volume_per_period))?;
                if v < Decimal::ZERO {
                    return Err("must not be negative".into());
                }
                Some(v)
            }
        }
        other => return Err(format!("'{other}' cannot be set")),
    }
    Ok(())
}

fn apply(mut k: Kpi, paths: &[&str], w: &pb::Kpi, currency: CurrencyCode) -> Result<Kpi> {
    let mut violations = Vec::new();
    for path in paths {
        if let Err(why) = set_field(&mut k, path, w, currency) {
            violations.push(FieldViolation::new(format!("kpi.{path}"), why));
        }
    }
    if k.unit_kind == UnitKind::Percentage && k.target.is_some_and(|t| !(0.0..=100.0).contains(&t))
    {
        violations.push(FieldViolation::new(
            "kpi.target",
            "a percentage target must be within 0 and 100",
        ));
    }
    if k.value_per_unit.is_some() != k.volume_per_period.is_some() {
        violations.push(FieldViolation::new(
            "kpi.volume_per_period",
            "value_per_unit and volume_per_period go together",
        ));
    }
    if violations.is_empty() {
        Ok(k)
    } else {
        Err(Error::InvalidArgument(violations))
    }
}

fn blank(project_id: Uuid, organisation_id: Uuid) -> Kpi {
    let now = chrono::Utc::now();
    Kpi {
        id: Uuid::nil(),
        organisation_id,
        project_id,
        name: String::new(),
        description: String::new(),
        unit: String::new(),
        unit_kind: UnitKind::Count,
        direction: Direction::HigherIsBetter,
        category: Category::Productivity,
        primary: false,
        target: None,
        method: String::new(),
        cadence: None,
        value_per_unit: None,
        volume_per_period: None,
        archived: false,
        create_time: now,
        update_time: now,
        version: 0,
    }
}

fn time_in(t: Option<&Timestamp>) -> Result<DateTime<chrono::Utc>, String> {
    conv::time_in(t)?.ok_or_else(|| "is required".to_owned())
}

/// A wire measurement to a new one, or the first bad field.
fn new_measurement(m: &pb::Measurement, prefix: &str) -> Result<NewMeasurement, (String, String)> {
    let f = |name: &str| format!("{prefix}{name}");
    let kpi_id = jalon_core::values::parse_id(&m.kpi_id).map_err(|e| (f("kpi_id"), e))?;
    let measure_time = time_in(m.measure_time.as_ref()).map_err(|e| (f("measure_time"), e))?;
    let stage = required("stage", stage_in(m.stage)).map_err(|e| (f("stage"), e))?;
    let source = source_in(m.source)
        .map_err(|e| (f("source"), e))?
        .unwrap_or(Source::Manual);
    let period_start = date_in(m.period_start.as_ref()).map_err(|e| (f("period_start"), e))?;
    let period_end = date_in(m.period_end.as_ref()).map_err(|e| (f("period_end"), e))?;
    if let (Some(s), Some(e)) = (period_start, period_end)
        && e < s
    {
        return Err((f("period_end"), "must not be before period_start".into()));
    }
    let sample_size = match m.sample_size {
        None => None,
        Some(n) => Some(
            u64::try_from(n).map_err(|_| (f("sample_size"), "must not be negative".to_owned()))?,
        ),
    };
    let external_ref =
        jalon_core::values::free_text(&m.external_ref, 200).map_err(|e| (f("external_ref"), e))?;
    Ok(NewMeasurement {
        kpi_id,
        value: m.value,
        measure_time,
        period_start,
        period_end,
        stage,
        sample_size,
        std_dev: m.std_dev,
        source,
        external_ref: (!external_ref.is_empty()).then_some(external_ref),
    })
}

impl KpiApi {
    async fn currency(&self, org: Uuid) -> Result<CurrencyCode> {
        let o = jalon_store::organisations::get(self.store.db(), org).await?;
        CurrencyCode::parse(&o.default_currency).map_err(Error::Internal)
    }

    /// The KPI and its project, which the caller must see.
    async fn visible_kpi(
        &self,
        membership: &Membership,
        org: Uuid,
        id: Uuid,
    ) -> Result<(Kpi, Project)> {
        let k = kpis::get(self.store.db(), org, id).await?;
        let project = jalon_store::projects::get(self.store.db(), org, k.project_id).await?;
        if !visible(membership, &project) {
            return Err(Error::NotFound { resource: "kpi" });
        }
        Ok((k, project))
    }
}

/// The caller's standing for a measurement import: checked once, on the
/// first message.
pub struct MeasurementSession {
    caller: jalon_store::change::Caller,
}

impl Import for KpiApi {
    type Message = pb::ImportMeasurementsRequest;
    type Wire = pb::Measurement;
    type Row = NewMeasurement;
    type Session = MeasurementSession;

    const KIND: &'static str = "measurement";

    fn organisation_id(message: &pb::ImportMeasurementsRequest) -> &str {
        &message.organisation_id
    }

    fn rows(message: pb::ImportMeasurementsRequest) -> Vec<pb::Measurement> {
        message.measurements
    }

    async fn open(&self, caller: &Caller, org: Uuid) -> Result<MeasurementSession> {
        member(authorise(&self.store, caller, Action::ImportMeasurements, org).await?)?;
        Ok(MeasurementSession {
            caller: requester(caller),
        })
    }

    fn parse(
        _: &MeasurementSession,
        wire: &pb::Measurement,
    ) -> Result<NewMeasurement, (String, String)> {
        new_measurement(wire, "")
    }

    /// The adapter to the store's batch call.
    async fn write(
        &self,
        session: &MeasurementSession,
        org: Uuid,
        rows: &[NewMeasurement],
    ) -> Result<Vec<import::Outcome>> {
        let outcomes = kpis::record(
            self.store.db(),
            org,
            &session.caller,
            Action::ImportMeasurements,
            rows,
        )
        .await?;
        Ok(outcomes
            .into_iter()
            .map(|outcome| match outcome {
                Outcome::Accepted(_) => import::Outcome::Accepted,
                Outcome::Duplicate(m) => import::Outcome::Duplicate(m.id),
                Outcome::Rejected(e) => import::Outcome::Rejected(e),
            })
            .collect())
    }
}

#[tonic::async_trait]
impl KpiService for KpiApi {
    #[tracing::instrument(skip_all)]
    async fn create_kpi(
        &self,
        request: Request<pb::CreateKpiRequest>,
    ) -> Result<Response<pb::CreateKpiResponse>, Status> {
        let caller = caller(&request)?;
        let req = request.get_ref();
        let org = conv::id("organisation_id", &req.organisation_id).or_status()?;
        let wire = conv::required("kpi", req.kpi.as_ref()).or_status()?;
        let project_id = conv::id("kpi.project_id", &wire.project_id).or_status()?;
        member(
            authorise(&self.store, &caller, Action::CreateKpi, org)
                .await
                .or_status()?,
        )
        .or_status()?;
        let currency = self.currency(org).await.or_status()?;
        let k = apply(blank(project_id, org), UPDATABLE, wire, currency).or_status()?;
        let created = kpis::create(self.store.db(), org, &k, &requester(&caller))
            .await
            .or_status()?;
        Ok(Response::new(pb::CreateKpiResponse {
            kpi: Some(kpi_to_proto(created)),
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn get_kpi(
        &self,
        request: Request<pb::GetKpiRequest>,
    ) -> Result<Response<pb::GetKpiResponse>, Status> {
        let caller = caller(&request)?;
        let req = request.get_ref();
        let org = conv::id("organisation_id", &req.organisation_id).or_status()?;
        let id = conv::id("id", &req.id).or_status()?;
        let membership = member(
            authorise(&self.store, &caller, Action::GetKpi, org)
                .await
                .or_status()?,
        )
        .or_status()?;
        let (k, _) = self.visible_kpi(&membership, org, id).await.or_status()?;
        Ok(Response::new(pb::GetKpiResponse {
            kpi: Some(kpi_to_proto(k)),
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn list_kpis(
        &self,
        request: Request<pb::ListKpisRequest>,
    ) -> Result<Response<pb::ListKpisResponse>, Status> {
        let caller = caller(&request)?;
        let req = request.get_ref();
        let org = conv::id("organisation_id", &req.organisation_id).or_status()?;
        let project_id = conv::id("project_id", &req.project_id).or_status()?;
        let category = category_in(req.category)
            .map_err(|d| Error::invalid("category", d))
            .or_status()?;
        let membership = member(
            authorise(&self.store, &caller, Action::ListKpis, org)
                .await
                .or_status()?,
        )
        .or_status()?;
        visible_project(&self.store, &membership, org, project_id)
            .await
            .or_status()?;
        let list = kpis::list(
            self.store.db(),
            org,
            project_id,
            category,
            req.include_archived,
        )
        .await
        .or_status()?;
        Ok(Response::new(pb::ListKpisResponse {
            kpis: list.into_iter().map(kpi_to_proto).collect(),
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn update_kpi(
        &self,
        request: Request<pb::UpdateKpiRequest>,
    ) -> Result<Response<pb::UpdateKpiResponse>, Status> {
        let caller = caller(&request)?;
        let req = request.get_ref();
        let org = conv::id("organisation_id", &req.organisation_id).or_status()?;
        let wire = conv::required("kpi", req.kpi.as_ref()).or_status()?;
        let id = conv::id("kpi.id", &wire.id).or_status()?;
        let paths = conv::mask_paths(req.update_mask.as_ref(), UPDATABLE).or_status()?;
        let paths: Vec<&str> = paths.iter().map(String::as_str).collect();
        member(
            authorise(&self.store, &caller, Action::UpdateKpi, org)
                .await
                .or_status()?,
        )
        .or_status()?;
        let currency = self.currency(org).await.or_status()?;
        let updated = kpis::update(
            self.store.db(),
            org,
            id,
            &wire.etag,
            &requester(&caller),
            (Action::UpdateKpi, "kpi.updated"),
            |current| apply(current.clone(), &paths, wire, currency),
        )
        .await
        .or_status()?;
        Ok(Response::new(pb::UpdateKpiResponse {
            kpi: Some(kpi_to_proto(updated)),
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn archive_kpi(
        &self,
        request: Request<pb::ArchiveKpiRequest>,
    ) -> Result<Response<pb::ArchiveKpiResponse>, Status> {
        let caller = caller(&request)?;
        let req = request.get_ref();
        let org = conv::id("organisation_id", &req.organisation_id).or_status()?;
        let id = conv::id("id", &req.id).or_status()?;
        // The membership is read, and the policy applied, inside the change.
        let archived = kpis::update(
            self.store.db(),
            org,
            id,
            "",
            &requester(&caller),
            (Action::ArchiveKpi, "kpi.archived"),
            |current| {
                if current.archived {
                    return Err(Error::precondition(
                        "KPI_ARCHIVED",
                        format!("kpis/{id}"),
                        "the KPI is already archived",
                    ));
                }
                Ok(Kpi {
                    archived: true,
                    ..current.clone()
                })
            },
        )
        .await
        .or_status()?;
        Ok(Response::new(pb::ArchiveKpiResponse {
            kpi: Some(kpi_to_proto(archived)),
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn record_measurement(
        &self,
        request: Request<pb::RecordMeasurementRequest>,
    ) -> Result<Response<pb::RecordMeasurementResponse>, Status> {
        let caller = caller(&request)?;
        let req = request.get_ref();
        let org = conv::id("organisation_id", &req.organisation_id).or_status()?;
        let wire = conv::required("measurement", req.measurement.as_ref()).or_status()?;
        let new = new_measurement(wire, "measurement.")
            .map_err(|(field, why)| Error::invalid(field, why))
            .or_status()?;
        // The membership is read, and the policy applied, inside the change.
        let outcomes = kpis::record(
            self.store.db(),
            org,
            &requester(&caller),
            Action::RecordMeasurement,
            &[new],
        )
        .await
        .or_status()?;
        match outcomes.into_iter().next() {
            Some(Outcome::Accepted(m)) => Ok(Response::new(pb::RecordMeasurementResponse {
                measurement: Some(measurement_to_proto(m)),
                duplicate: false,
            })),
            Some(Outcome::Duplicate(m)) => Ok(Response::new(pb::RecordMeasurementResponse {
                measurement: Some(measurement_to_proto(m)),
                duplicate: true,
            })),
            Some(Outcome::Rejected(Error::InvalidArgument(v))) => {
                Err(to_status(Error::InvalidArgument(
                    v.into_iter()
                        .map(|x| {
                            FieldViolation::new(format!("measurement.{}", x.field), x.description)
                        })
                        .collect(),
                )))
            }
            Some(Outcome::Rejected(e)) => Err(to_status(e)),
            None => Err(to_status(Error::Internal(
                "no outcome for the measurement".into(),
            ))),
        }
    }

    #[tracing::instrument(skip_all)]
    async fn list_measurements(
        &self,
        request: Request<pb::ListMeasurementsRequest>,
    ) -> Result<Response<pb::ListMeasurementsResponse>, Status> {
        let caller = caller(&request)?;
        let req = request.get_ref();
        let org = conv::id("organisation_id", &req.organisation_id).or_status()?;
        let id = conv::id("kpi_id", &req.kpi_id).or_status()?;
        let stage = stage_in(req.stage)
            .map_err(|d| Error::invalid("stage", d))
            .or_status()?;
        let membership = member(
            authorise(&self.store, &caller, Action::ListMeasurements, org)
                .await
                .or_status()?,
        )
        .or_status()?;
        self.visible_kpi(&membership, org, id).await.or_status()?;
        let list = kpis::measurements(self.store.db(), id, stage)
            .await
            .or_status()?;
        Ok(Response::new(pb::ListMeasurementsResponse {
            measurements: list.into_iter().map(measurement_to_proto).collect(),
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn import_measurements(
        &self,
        request: Request<Streaming<pb::ImportMeasurementsRequest>>,
    ) -> Result<Response<pb::ImportMeasurementsResponse>, Status> {
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
        Ok(Response::new(pb::ImportMeasurementsResponse {
            results: summary
                .results
                .into_iter()
                .map(|r| pb::ImportRowResult {
                    row: r.row,
                    status: match r.status {
                        RowStatus::Duplicate => pb::ImportRowStatus::Duplicate,
                        RowStatus::Rejected => pb::ImportRowStatus::Rejected,
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
    async fn get_kpi_result(
        &self,
        request: Request<pb::GetKpiResultRequest>,
    ) -> Result<Response<pb::GetKpiResultResponse>, Status> {
        let caller = caller(&request)?;
        let req = request.get_ref();
        let org = conv::id("organisation_id", &req.organisation_id).or_status()?;
        let id = conv::id("id", &req.id).or_status()?;
        let membership = member(
            authorise(&self.store, &caller, Action::GetKpiResult, org)
                .await
                .or_status()?,
        )
        .or_status()?;
        let (k, _) = self.visible_kpi(&membership, org, id).await.or_status()?;
        // From the KPI's statistics, kept by the writes: a KPI with a
        // hundred thousand measurements reads a few rows.
        let stats = jalon_store::aggregates::kpi_stats(self.store.db(), id)
            .await
            .or_status()?;
        let r = kpi::result_from_stats(&k, &stats);
        let underperforming = kpi::underperforming(&k, &r);
        let monetised = r
            .absolute_change
            .and_then(|change| kpi::monetised(&k, change));
        let s = r.significance.clone();
        Ok(Response::new(pb::GetKpiResultResponse {
            baseline: r.baseline,
            baseline_count: i32::try_from(r.baseline_count).unwrap_or(i32::MAX),
            late_baseline: r.late_baseline,
            poc_result: r.poc_result,
            current: r.current,
            current_period: r.current_period.unwrap_or_default(),
            series: r
                .series
                .into_iter()
                .map(|p| pb::PeriodMean {
                    period: p.period,
                    mean: p.mean,
                    count: i32::try_from(p.count).unwrap_or(i32::MAX),
                })
                .collect(),
            absolute_change: r.absolute_change,
            relative_change: r.relative_change,
            target_attainment: r.target_attainment,
            target_met: r.target_met,
            significance_known: s.is_some(),
            improvement_low: s.as_ref().map_or(0.0, |s| s.low),
            improvement_high: s.as_ref().map_or(0.0, |s| s.high),
            degrees_of_freedom: s.as_ref().map_or(0.0, |s| s.degrees_of_freedom),
            significant: s.as_ref().is_some_and(|s| s.significant),
            monetised_gain_per_period: monetised.map(conv::money_out),
            underperforming,
            kpi: Some(kpi_to_proto(k)),
        }))
    }
}
