//! KPIs and their measurements (the underperformance flag they raise is
//! set by the portfolio's refresh at commit: `Change::touch_kpis`).

use std::collections::{BTreeSet, HashMap};

use chrono::Utc;
use jalon_core::{
    Error, Result,
    authz::Action,
    kpi::{self, Category, Kpi, KpiFacts, Measurement, Source, Stage},
    organisation::etag_matches,
    project::Project,
};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection,
    EntityTrait, QueryFilter, QueryOrder,
};
use serde_json::json;
use uuid::Uuid;

use crate::{
    audit::NewEvent,
    change::{Caller, Change},
    entity::{kpi as kpi_entity, kpi_measurement as measurement},
    error::db_error,
    rows::kpis::{from_model, measurement_from},
};

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
    caller: &Caller,
) -> Result<Kpi> {
    let mut change = Change::begin(db, organisation_id, caller, Action::CreateKpi).await?;
    change.project_for(kpi.project_id, "project").await?;
    change.touch(kpi.project_id);
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
    let created = from_model(model.insert(change.conn()).await.map_err(db_error)?)?;
    change.event(NewEvent {
        project_id: Some(kpi.project_id),
        action: "kpi.created",
        resource_type: "kpi",
        resource_id: id.to_string(),
        before: None,
        after: audit_view(&created),
        chained: false,
    });
    change.commit().await?;
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
        .transpose()?
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
    query
        .order_by_asc(kpi_entity::Column::Id)
        .all(conn)
        .await
        .map_err(db_error)?
        .into_iter()
        .map(from_model)
        .collect()
}

/// Updates a KPI: `apply` returns the new state from the current one;
/// compare-and-swap on the version.
pub async fn update(
    db: &DatabaseConnection,
    organisation_id: Uuid,
    id: Uuid,
    etag: &str,
    caller: &Caller,
    (rule, action): (Action, &'static str),
    apply: impl FnOnce(&Kpi) -> Result<Kpi>,
) -> Result<Kpi> {
    let mut change = Change::begin(db, organisation_id, caller, rule).await?;
    let project_id = get(change.conn(), organisation_id, id).await?.project_id;
    change.project_for(project_id, "kpi").await?;
    change.touch(project_id);
    let current = get(change.conn(), organisation_id, id).await?;
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
        .exec(change.conn())
        .await
        .map_err(db_error)?;
    if result.rows_affected == 0 {
        return Err(Error::stale_etag("kpi"));
    }
    let updated = get(change.conn(), organisation_id, id).await?;
    if updated.cadence != current.cadence {
        // The review periods regroup: the KPI's statistics are recomputed
        // once from its measurements.
        crate::aggregates::recompute_kpi(change.conn(), &updated).await?;
    }
    change.event(NewEvent {
        project_id: Some(updated.project_id),
        action,
        resource_type: "kpi",
        resource_id: id.to_string(),
        before: Some(audit_view(&current)),
        after: audit_view(&updated),
        chained: false,
    });
    change.touch_kpis(updated.project_id);
    change.commit().await?;
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

/// Records measurements (one or an import's batch) in one change: each is
/// checked on its own (a bad one is rejected, the others go in); an
/// external_ref already recorded with the same content is a duplicate, with
/// other content a rejection. The batch costs a fixed number of statements
/// whatever the KPIs' history: KPIs and projects are read and locked
/// together, external_refs looked up in one query, accepted rows inserted
/// together, and the KPIs' statistics moved by what was accepted; then the
/// projects' underperformance flags are brought up to date from the
/// statistics.
pub async fn record(
    db: &DatabaseConnection,
    organisation_id: Uuid,
    caller: &Caller,
    action: Action,
    rows: &[NewMeasurement],
) -> Result<Vec<Outcome>> {
    let mut change = Change::begin(db, organisation_id, caller, action).await?;
    let kpi_ids: BTreeSet<Uuid> = rows.iter().map(|r| r.kpi_id).collect();
    let found = get_many(
        change.conn(),
        organisation_id,
        kpi_ids.iter().copied().collect(),
    )
    .await?;
    let projects = change
        .projects_for(found.iter().map(|k| k.project_id), "kpi")
        .await?;
    let kpis: HashMap<Uuid, std::result::Result<(Kpi, Project), Error>> = found
        .into_iter()
        .map(|k| {
            let entry = match projects.get(&k.project_id) {
                Some(Ok(p)) => Ok((k.clone(), p.clone())),
                Some(Err(e)) => Err(e.clone()),
                None => Err(Error::NotFound { resource: "kpi" }),
            };
            (k.id, entry)
        })
        .collect();
    let refs: Vec<(Uuid, String)> = rows
        .iter()
        .filter_map(|r| Some((r.kpi_id, r.external_ref.clone()?)))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut recorded: HashMap<(Uuid, String), Measurement> = HashMap::new();
    let keys: Vec<Vec<sea_orm::Value>> = refs
        .iter()
        .map(|(k, r)| vec![(*k).into(), r.clone().into()])
        .collect();
    for m in crate::aggregates::find_by_keys::<measurement::Entity>(
        change.conn(),
        "kpi_measurements",
        &keys,
        None,
        |_| "t.kpi_id = r.column1 AND t.external_ref = r.column2".to_owned(),
    )
    .await?
    {
        let m = measurement_from(m)?;
        if let Some(r) = m.external_ref.clone() {
            recorded.insert((m.kpi_id, r), m);
        }
    }
    let now = Utc::now();
    let mut outcomes = Vec::with_capacity(rows.len());
    let mut accepted: Vec<Measurement> = Vec::new();
    for row in rows {
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
        if let Some(external_ref) = &row.external_ref
            && let Some(existing) = recorded.get(&(row.kpi_id, external_ref.clone()))
        {
            outcomes.push(if same(existing, row) {
                Outcome::Duplicate(existing.clone())
            } else {
                Outcome::Rejected(Error::AlreadyExists(format!(
                    "external_ref {external_ref} was recorded with other values"
                )))
            });
            continue;
        }
        let m = Measurement {
            id: Uuid::now_v7(),
            kpi_id: row.kpi_id,
            value: row.value,
            measure_time: chrono::DateTime::from_timestamp_micros(
                row.measure_time.timestamp_micros(),
            )
            .unwrap_or(row.measure_time),
            period_start: row.period_start,
            period_end: row.period_end,
            stage: row.stage,
            sample_size: row.sample_size,
            std_dev: row.std_dev,
            source: row.source,
            external_ref: row.external_ref.clone(),
            late_baseline: late,
        };
        if let Some(r) = &m.external_ref {
            recorded.insert((m.kpi_id, r.clone()), m.clone());
        }
        change.touch(project.id);
        accepted.push(m.clone());
        outcomes.push(Outcome::Accepted(m));
    }
    if accepted.is_empty() {
        return Ok(outcomes);
    }
    let models: Vec<measurement::ActiveModel> = accepted
        .iter()
        .map(|m| measurement::ActiveModel {
            id: Set(m.id),
            organisation_id: Set(organisation_id),
            kpi_id: Set(m.kpi_id),
            value: Set(m.value),
            measure_time: Set(m.measure_time),
            period_start: Set(m.period_start),
            period_end: Set(m.period_end),
            stage: Set(m.stage.as_str().to_owned()),
            sample_size: Set(m.sample_size.and_then(|n| i64::try_from(n).ok())),
            std_dev: Set(m.std_dev),
            source: Set(m.source.as_str().to_owned()),
            external_ref: Set(m.external_ref.clone()),
            late_baseline: Set(m.late_baseline),
            create_time: Set(now),
        })
        .collect();
    for chunk in models.chunks(crate::CHUNK) {
        measurement::Entity::insert_many(chunk.to_vec())
            .exec(change.conn())
            .await
            .map_err(db_error)?;
    }
    let pairs: Vec<(&Kpi, &Measurement)> = accepted
        .iter()
        .filter_map(|m| match kpis.get(&m.kpi_id) {
            Some(Ok((k, _))) => Some((k, m)),
            _ => None,
        })
        .collect();
    crate::aggregates::add_measurements(change.conn(), organisation_id, &pairs).await?;
    let touched: BTreeSet<Uuid> = pairs.iter().map(|(k, _)| k.project_id).collect();
    change.event(NewEvent {
        project_id: (touched.len() == 1).then(|| touched.iter().copied().next()).flatten(),
        action: "kpi.measurements_recorded",
        resource_type: "kpi_measurement",
        resource_id: format!("{} measurement(s)", accepted.len()),
        before: None,
        after: json!(pairs.iter().map(|(k, m)| json!({"kpi_id": m.kpi_id, "project_id": k.project_id, "id": m.id, "value": m.value, "stage": m.stage.as_str(), "late_baseline": m.late_baseline})).collect::<Vec<_>>()),
        chained: false,
    });
    for project_id in touched {
        change.touch_kpis(project_id);
    }
    change.commit().await?;
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
    query
        .order_by_asc(measurement::Column::MeasureTime)
        .order_by_asc(measurement::Column::Id)
        .all(conn)
        .await
        .map_err(db_error)?
        .into_iter()
        .map(measurement_from)
        .collect()
}

/// Several KPIs of an organisation (those that exist there).
async fn get_many(
    conn: &impl ConnectionTrait,
    organisation_id: Uuid,
    ids: Vec<Uuid>,
) -> Result<Vec<Kpi>> {
    let mut out = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(crate::CHUNK) {
        for m in kpi_entity::Entity::find()
            .filter(kpi_entity::Column::OrganisationId.eq(organisation_id))
            .filter(kpi_entity::Column::Id.is_in(chunk.to_vec()))
            .all(conn)
            .await
            .map_err(db_error)?
        {
            out.push(from_model(m)?);
        }
    }
    Ok(out)
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
    let stats = crate::aggregates::load_kpi_stats(conn, &[project_id]).await?;
    let mut out = Vec::with_capacity(kpis.len());
    for m in kpis {
        let k = from_model(m)?;
        let (r, _) = crate::aggregates::kpi_outcome(&k, stats.get(&k.id));
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
