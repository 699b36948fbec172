//! KPIs and their measurements, and the underperformance flag they raise.

use std::{collections::HashMap, str::FromStr};

use chrono::Utc;
use jalon_core::{
    Error, Result,
    kpi::{
        self, Cadence, Category, Direction, Kpi, KpiFacts, Measurement, Source, Stage, UnitKind,
    },
    organisation::etag_matches,
    project::{Project, Status},
    values::{CurrencyCode, Money},
};
use rust_decimal::Decimal;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection,
    EntityTrait, QueryFilter, QueryOrder,
};
use serde_json::json;
use uuid::Uuid;

use crate::{
    audit::{self, Actor, NewEvent},
    begin_write, commit,
    entity::{kpi as kpi_entity, kpi_measurement as measurement, project as project_entity},
    error::db_error,
    people::lock_organisation,
    projects,
};

fn parse<T: FromStr>(raw: &str) -> Option<T> {
    raw.parse().ok()
}

fn from_model(m: kpi_entity::Model) -> Kpi {
    let value_per_unit = match (m.value_per_unit_minor, m.value_per_unit_currency.as_deref()) {
        (Some(minor), Some(code)) => CurrencyCode::parse(code)
            .ok()
            .map(|c| Money::from_minor(minor, c)),
        _ => None,
    };
    Kpi {
        id: m.id,
        organisation_id: m.organisation_id,
        project_id: m.project_id,
        name: m.name,
        description: m.description,
        unit: m.unit,
        unit_kind: parse(&m.unit_kind).unwrap_or(UnitKind::Count),
        direction: parse(&m.direction).unwrap_or(Direction::HigherIsBetter),
        category: parse(&m.category).unwrap_or(Category::Productivity),
        primary: m.is_primary,
        target: m.target,
        method: m.method,
        cadence: m.cadence.as_deref().and_then(parse::<Cadence>),
        value_per_unit,
        volume_per_period: m
            .volume_per_period
            .as_deref()
            .and_then(|v| Decimal::from_str(v).ok()),
        archived: m.archived,
        create_time: m.create_time,
        update_time: m.update_time,
        version: m.version,
    }
}

fn measurement_from(m: measurement::Model) -> Measurement {
    Measurement {
        id: m.id,
        kpi_id: m.kpi_id,
        value: m.value,
        measure_time: m.measure_time,
        period_start: m.period_start,
        period_end: m.period_end,
        stage: parse(&m.stage).unwrap_or(Stage::Baseline),
        sample_size: m.sample_size.and_then(|n| u64::try_from(n).ok()),
        std_dev: m.std_dev,
        source: parse(&m.source).unwrap_or(Source::Manual),
        external_ref: m.external_ref,
        late_baseline: m.late_baseline,
    }
}

fn write(model: &mut kpi_entity::ActiveModel, k: &Kpi) {
    model.name = Set(k.name.clone());
    model.description = Set(k.description.clone());
    model.unit = Set(k.unit.clone());
    model.unit_kind = Set(k.unit_kind.as_str().to_owned());
    model.direction = Set(k.direction.as_str().to_owned());
    model.category = Set(k.category.as_str().to_owned());
    model.is_primary = Set(k.primary);
    model.target = Set(k.target);
    model.method = Set(k.method.clone());
    model.cadence = Set(k.cadence.map(|c| c.as_str().to_owned()));
    model.value_per_unit_minor = Set(k.value_per_unit.map(|m| m.minor_units()));
    model.value_per_unit_currency = Set(k.value_per_unit.map(|m| m.currency().as_str().to_owned()));
    model.volume_per_period = Set(k.volume_per_period.map(|v| v.normalize().to_string()));
    model.archived = Set(k.archived);
}

/// What the audit log keeps of a KPI.
fn audit_view(k: &Kpi) -> serde_json::Value {
    json!({
        "name": k.name, "unit": k.unit, "unit_kind": k.unit_kind.as_str(), "direction": k.direction.as_str(),
        "category": k.category.as_str(), "primary": k.primary, "target": k.target,
        "cadence": k.cadence.map(|c| c.as_str()),
        "value_per_unit": k.value_per_unit.map(|m| format!("{m} {}", m.currency())),
        "volume_per_period": k.volume_per_period.map(|v| v.to_string()), "archived": k.archived,
    })
}

/// Creates a KPI on a project (`kpi`'s id, times and version are ignored).
pub async fn create(
    db: &DatabaseConnection,
    organisation_id: Uuid,
    kpi: &Kpi,
    actor: &Actor,
) -> Result<Kpi> {
    let txn = begin_write(db).await?;
    lock_organisation(&txn, organisation_id).await?;
    projects::get(&txn, organisation_id, kpi.project_id).await?;
    let now = Utc::now();
    let id = Uuid::now_v7();
    let mut model = kpi_entity::ActiveModel {
        id: Set(id),
        organisation_id: Set(organisation_id),
        project_id: Set(kpi.project_id),
        create_time: Set(now),
        update_time: Set(now),
        version: Set(1),
        ..Default::default()
    };
    write(&mut model, kpi);
    let created = from_model(model.insert(&txn).await.map_err(db_error)?);
    audit::record(
        &txn,
        organisation_id,
        actor,
        NewEvent {
            project_id: Some(kpi.project_id),
            action: "kpi.created",
            resource_type: "kpi",
            resource_id: id.to_string(),
            before: None,
            after: audit_view(&created),
            chained: false,
        },
    )
    .await?;
    crate::portfolio::refresh(&txn, organisation_id, [kpi.project_id]).await?;
    commit(txn).await?;
    Ok(created)
}

/// Reads a KPI.
pub async fn get(conn: &impl ConnectionTrait, organisation_id: Uuid, id: Uuid) -> Result<Kpi> {
    kpi_entity::Entity::find_by_id(id)
        .filter(kpi_entity::Column::OrganisationId.eq(organisation_id))
        .one(conn)
        .await
        .map_err(db_error)?
        .map(from_model)
        .ok_or(Error::NotFound { resource: "kpi" })
}

/// A project's KPIs (archived ones only when asked), oldest first.
pub async fn list(
    conn: &impl ConnectionTrait,
    organisation_id: Uuid,
    project_id: Uuid,
    category: Option<Category>,
    include_archived: bool,
) -> Result<Vec<Kpi>> {
    let mut query = kpi_entity::Entity::find()
        .filter(kpi_entity::Column::OrganisationId.eq(organisation_id))
        .filter(kpi_entity::Column::ProjectId.eq(project_id));
    if let Some(c) = category {
        query = query.filter(kpi_entity::Column::Category.eq(c.as_str()));
    }
    if !include_archived {
        query = query.filter(kpi_entity::Column::Archived.eq(false));
    }
    Ok(query
        .order_by_asc(kpi_entity::Column::Id)
        .all(conn)
        .await
        .map_err(db_error)?
        .into_iter()
        .map(from_model)
        .collect())
}

/// Updates a KPI: `apply` returns the new state from the current one;
/// compare-and-swap on the version.
pub async fn update(
    db: &DatabaseConnection,
    organisation_id: Uuid,
    id: Uuid,
    etag: &str,
    actor: &Actor,
    action: &'static str,
    apply: impl FnOnce(&Kpi) -> Result<Kpi>,
) -> Result<Kpi> {
    let txn = begin_write(db).await?;
    lock_organisation(&txn, organisation_id).await?;
    let current = get(&txn, organisation_id, id).await?;
    if !etag_matches(etag, current.version) {
        return Err(Error::stale_etag("kpi"));
    }
    let next = apply(&current)?;
    let mut model = kpi_entity::ActiveModel {
        update_time: Set(Utc::now()),
        version: Set(current.version + 1),
        ..Default::default()
    };
    write(&mut model, &next);
    let result = kpi_entity::Entity::update_many()
        .set(model)
        .filter(kpi_entity::Column::Id.eq(id))
        .filter(kpi_entity::Column::Version.eq(current.version))
        .exec(&txn)
        .await
        .map_err(db_error)?;
    if result.rows_affected == 0 {
        return Err(Error::stale_etag("kpi"));
    }
    let updated = get(&txn, organisation_id, id).await?;
    audit::record(
        &txn,
        organisation_id,
        actor,
        NewEvent {
            project_id: Some(updated.project_id),
            action,
            resource_type: "kpi",
            resource_id: id.to_string(),
            before: Some(audit_view(&current)),
            after: audit_view(&updated),
            chained: false,
        },
    )
    .await?;
    crate::portfolio::refresh(&txn, organisation_id, [updated.project_id]).await?;
    commit(txn).await?;
    Ok(updated)
}

/// A measurement to record.
#[derive(Debug, Clone, PartialEq)]
pub struct NewMeasurement {
    pub kpi_id: Uuid,
    pub value: f64,
    pub measure_time: chrono::DateTime<Utc>,
    pub period_start: Option<chrono::NaiveDate>,
    pub period_end: Option<chrono::NaiveDate>,
    pub stage: Stage,
    pub sample_size: Option<u64>,
    pub std_dev: Option<f64>,
    pub source: Source,
    pub external_ref: Option<String>,
}

/// What became of one measurement.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Accepted(Measurement),
    /// Already recorded under this external_ref with the same content.
    Duplicate(Measurement),
    /// Refused: a field and why, or a rule.
    Rejected(Error),
}

fn same(existing: &Measurement, new: &NewMeasurement) -> bool {
    existing.value == new.value
        && existing.stage == new.stage
        && existing.measure_time.timestamp_micros() == new.measure_time.timestamp_micros()
        && existing.sample_size == new.sample_size
        && existing.std_dev == new.std_dev
}

/// Records measurements (one or an import's batch) in one transaction: each
/// is checked on its own (a bad one is rejected, the others go in); an
/// external_ref already recorded with the same content is a duplicate, with
/// other content a rejection. Then the projects' underperformance flags are
/// brought up to date.
pub async fn record(
    db: &DatabaseConnection,
    organisation_id: Uuid,
    rows: &[NewMeasurement],
    actor: &Actor,
    authorise: impl Fn(&Project) -> Result<()>,
) -> Result<Vec<Outcome>> {
    let txn = begin_write(db).await?;
    lock_organisation(&txn, organisation_id).await?;
    let mut kpis: HashMap<Uuid, std::result::Result<(Kpi, Project), Error>> = HashMap::new();
    let mut outcomes = Vec::with_capacity(rows.len());
    let mut touched = Vec::new();
    let mut accepted = Vec::new();
    for row in rows {
        if let std::collections::hash_map::Entry::Vacant(slot) = kpis.entry(row.kpi_id) {
            let found = match get(&txn, organisation_id, row.kpi_id).await {
                Ok(k) => {
                    let project = projects::get(&txn, organisation_id, k.project_id).await?;
                    authorise(&project).map(|()| (k, project))
                }
                Err(e @ Error::NotFound { .. }) => Err(e),
                Err(e) => return Err(e),
            };
            slot.insert(found);
        }
        let (kpi, project) = match kpis.get(&row.kpi_id) {
            Some(Ok(found)) => found,
            Some(Err(Error::NotFound { .. })) | None => {
                outcomes.push(Outcome::Rejected(Error::NotFound { resource: "kpi" }));
                continue;
            }
            Some(Err(e)) => {
                outcomes.push(Outcome::Rejected(e.clone()));
                continue;
            }
        };
        if kpi.archived {
            outcomes.push(Outcome::Rejected(Error::precondition(
                "KPI_ARCHIVED",
                format!("kpis/{}", kpi.id),
                "the KPI is archived",
            )));
            continue;
        }
        if let Err((field, why)) =
            kpi::check_value(kpi.unit_kind, row.value, row.sample_size, row.std_dev)
        {
            outcomes.push(Outcome::Rejected(Error::invalid(field, why)));
            continue;
        }
        let late = match kpi::check_stage(row.stage, row.measure_time, &project.phase_history) {
            Ok(late) => late,
            Err(e) => {
                outcomes.push(Outcome::Rejected(e));
                continue;
            }
        };
        if let Some(external_ref) = &row.external_ref {
            let existing = measurement::Entity::find()
                .filter(measurement::Column::KpiId.eq(row.kpi_id))
                .filter(measurement::Column::ExternalRef.eq(external_ref.as_str()))
                .one(&txn)
                .await
                .map_err(db_error)?
                .map(measurement_from);
            if let Some(existing) = existing {
                outcomes.push(if same(&existing, row) {
                    Outcome::Duplicate(existing)
                } else {
                    Outcome::Rejected(Error::AlreadyExists(format!(
                        "external_ref {external_ref} was recorded with other values"
                    )))
                });
                continue;
            }
        }
        let stored = measurement::ActiveModel {
            id: Set(Uuid::now_v7()),
            organisation_id: Set(organisation_id),
            kpi_id: Set(row.kpi_id),
            value: Set(row.value),
            measure_time: Set(chrono::DateTime::from_timestamp_micros(
                row.measure_time.timestamp_micros(),
            )
            .unwrap_or(row.measure_time)),
            period_start: Set(row.period_start),
            period_end: Set(row.period_end),
            stage: Set(row.stage.as_str().to_owned()),
            sample_size: Set(row.sample_size.and_then(|n| i64::try_from(n).ok())),
            std_dev: Set(row.std_dev),
            source: Set(row.source.as_str().to_owned()),
            external_ref: Set(row.external_ref.clone()),
            late_baseline: Set(late),
            create_time: Set(Utc::now()),
        }
        .insert(&txn)
        .await
        .map_err(db_error)?;
        let m = measurement_from(stored);
        if !touched.contains(&project.id) {
            touched.push(project.id);
        }
        accepted.push(json!({"kpi_id": m.kpi_id, "id": m.id, "value": m.value, "stage": m.stage.as_str(), "late_baseline": m.late_baseline}));
        outcomes.push(Outcome::Accepted(m));
    }
    if !accepted.is_empty() {
        audit::record(
            &txn,
            organisation_id,
            actor,
            NewEvent {
                project_id: (touched.len() == 1).then(|| touched[0]),
                action: "kpi.measurements_recorded",
                resource_type: "kpi_measurement",
                resource_id: format!("{} measurement(s)", accepted.len()),
                before: None,
                after: json!(accepted),
                chained: false,
            },
        )
        .await?;
    }
    for project_id in &touched {
        refresh_flag(&txn, organisation_id, *project_id, actor).await?;
    }
    crate::portfolio::refresh(&txn, organisation_id, touched).await?;
    commit(txn).await?;
    Ok(outcomes)
}

/// A KPI's measurements, oldest first.
pub async fn measurements(
    conn: &impl ConnectionTrait,
    kpi_id: Uuid,
    stage: Option<Stage>,
) -> Result<Vec<Measurement>> {
    let mut query = measurement::Entity::find().filter(measurement::Column::KpiId.eq(kpi_id));
    if let Some(s) = stage {
        query = query.filter(measurement::Column::Stage.eq(s.as_str()));
    }
    Ok(query
        .order_by_asc(measurement::Column::MeasureTime)
        .order_by_asc(measurement::Column::Id)
        .all(conn)
        .await
        .map_err(db_error)?
        .into_iter()
        .map(measurement_from)
        .collect())
}

/// Sets the project's underperformance flag from its active KPIs, recording
/// a change in the audit log.
async fn refresh_flag(
    conn: &impl ConnectionTrait,
    organisation_id: Uuid,
    project_id: Uuid,
    actor: &Actor,
) -> Result<()> {
    let project = projects::get(conn, organisation_id, project_id).await?;
    if !matches!(project.status, Status::InProduction | Status::Active) {
        return Ok(());
    }
    let mut failing = Vec::new();
    for k in list(conn, organisation_id, project_id, None, false).await? {
        let r = kpi::result(&k, &measurements(conn, k.id, None).await?);
        if kpi::underperforming(&k, &r) {
            failing.push(k.name.clone());
        }
    }
    let flag = !failing.is_empty();
    if flag == project.underperforming {
        return Ok(());
    }
    project_entity::Entity::update_many()
        .set(project_entity::ActiveModel {
            underperforming: Set(flag),
            ..Default::default()
        })
        .filter(project_entity::Column::Id.eq(project_id))
        .exec(conn)
        .await
        .map_err(db_error)?;
    audit::record(
        conn,
        organisation_id,
        actor,
        NewEvent {
            project_id: Some(project_id),
            action: if flag {
                "project.underperformance_flagged"
            } else {
                "project.underperformance_cleared"
            },
            resource_type: "project",
            resource_id: project_id.to_string(),
            before: Some(json!({"underperforming": !flag})),
            after: json!({"underperforming": flag, "kpis": failing}),
            chained: false,
        },
    )
    .await
}

/// What the KPI gate criteria need, for a project's active KPIs.
pub async fn gate_facts(conn: &impl ConnectionTrait, project_id: Uuid) -> Result<Vec<KpiFacts>> {
    let kpis = kpi_entity::Entity::find()
        .filter(kpi_entity::Column::ProjectId.eq(project_id))
        .filter(kpi_entity::Column::Archived.eq(false))
        .order_by_asc(kpi_entity::Column::Id)
        .all(conn)
        .await
        .map_err(db_error)?;
    let mut out = Vec::with_capacity(kpis.len());
    for m in kpis {
        let k = from_model(m);
        let r = kpi::result(&k, &measurements(conn, k.id, None).await?);
        out.push(KpiFacts {
            name: k.name,
            category: k.category,
            primary: k.primary,
            direction: k.direction,
            target: k.target,
            cadence: k.cadence,
            baseline_count: r.baseline_count,
            poc_result: r.poc_result,
        });
    }
    Ok(out)
}
