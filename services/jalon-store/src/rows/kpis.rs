//! KPI and measurement rows as the domain reads them: the reads that the
//! aggregates' recomputation shares with the KPI operations (`kpis`), below
//! both.

use std::str::FromStr;

use chrono::Utc;
use jalon_core::{
    Result,
    kpi::{Cadence, Kpi, Measurement, Source},
    values::{CurrencyCode, Money},
};
use rust_decimal::Decimal;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use uuid::Uuid;

use crate::{
    entity::{kpi as kpi_entity, kpi_measurement as measurement},
    error::db_error,
};

/// A stored enum value, or an error naming the row (never a silent
/// default).
pub(crate) fn parse<T: FromStr<Err = String>>(table: &str, id: Uuid, raw: &str) -> Result<T> {
    raw.parse().map_err(|e| crate::error::unknown(table, id, e))
}

pub(crate) fn from_model(m: kpi_entity::Model) -> Result<Kpi> {
    let value_per_unit = match (m.value_per_unit_minor, m.value_per_unit_currency.as_deref()) {
        (Some(minor), Some(code)) => Some(Money::from_minor(
            minor,
            CurrencyCode::parse(code).map_err(|e| crate::error::unknown("kpis", m.id, e))?,
        )),
        _ => None,
    };
    Ok(Kpi {
        id: m.id,
        organisation_id: m.organisation_id,
        project_id: m.project_id,
        unit_kind: parse("kpis", m.id, &m.unit_kind)?,
        direction: parse("kpis", m.id, &m.direction)?,
        category: parse("kpis", m.id, &m.category)?,
        cadence: m
            .cadence
            .as_deref()
            .map(|c| parse::<Cadence>("kpis", m.id, c))
            .transpose()?,
        volume_per_period: m
            .volume_per_period
            .as_deref()
            .map(|v| {
                Decimal::from_str(v).map_err(|e| crate::error::unknown("kpis", m.id, e.to_string()))
            })
            .transpose()?,
        name: m.name,
        description: m.description,
        unit: m.unit,
        primary: m.is_primary,
        target: m.target,
        method: m.method,
        value_per_unit,
        archived: m.archived,
        create_time: m.create_time,
        update_time: m.update_time,
        version: m.version,
    })
}

pub(crate) fn measurement_from(m: measurement::Model) -> Result<Measurement> {
    Ok(Measurement {
        stage: parse("kpi_measurements", m.id, &m.stage)?,
        source: parse("kpi_measurements", m.id, &m.source)?,
        id: m.id,
        kpi_id: m.kpi_id,
        value: m.value,
        measure_time: m.measure_time,
        period_start: m.period_start,
        period_end: m.period_end,
        sample_size: m.sample_size.and_then(|n| u64::try_from(n).ok()),
        std_dev: m.std_dev,
        external_ref: m.external_ref,
        late_baseline: m.late_baseline,
    })
}

/// A KPI's measurements in the order they were recorded (ids are
/// time-ordered), as its statistics saw them.
pub(crate) async fn measurements_in_record_order(
    conn: &impl ConnectionTrait,
    kpi_id: Uuid,
) -> Result<Vec<Measurement>> {
    measurement::Entity::find()
        .filter(measurement::Column::KpiId.eq(kpi_id))
        .order_by_asc(measurement::Column::Id)
        .all(conn)
        .await
        .map_err(db_error)?
        .into_iter()
        .map(measurement_from)
        .collect()
}

/// Every measurement of an organisation in record order, a page at a time,
/// with what the statistics read (the other fields are left empty).
pub(crate) async fn for_each_measurement(
    conn: &impl ConnectionTrait,
    organisation_id: Uuid,
    mut each: impl FnMut(Measurement),
) -> Result<()> {
    use measurement::Column as C;
    type Row = (
        Uuid,
        Uuid,
        f64,
        chrono::DateTime<Utc>,
        String,
        Option<i64>,
        Option<f64>,
        bool,
    );
    let mut after: Option<Uuid> = None;
    loop {
        let mut query = measurement::Entity::find()
            .select_only()
            .columns([
                C::Id,
                C::KpiId,
                C::Value,
                C::MeasureTime,
                C::Stage,
                C::SampleSize,
                C::StdDev,
                C::LateBaseline,
            ])
            .filter(C::OrganisationId.eq(organisation_id));
        if let Some(id) = after {
            query = query.filter(C::Id.gt(id));
        }
        let page: Vec<Row> = query
            .order_by_asc(C::Id)
            .limit(10_000)
            .into_tuple()
            .all(conn)
            .await
            .map_err(db_error)?;
        let Some(last) = page.last() else {
            return Ok(());
        };
        after = Some(last.0);
        for (id, kpi_id, value, measure_time, stage, sample_size, std_dev, late) in page {
            each(Measurement {
                id,
                kpi_id,
                value,
                measure_time,
                period_start: None,
                period_end: None,
                stage: parse("kpi_measurements", id, &stage)?,
                sample_size: sample_size.and_then(|n| u64::try_from(n).ok()),
                std_dev,
                source: Source::Manual,
                external_ref: None,
                late_baseline: late,
            });
        }
    }
}

/// Every KPI of an organisation.
pub(crate) async fn all_of_organisation(
    conn: &impl ConnectionTrait,
    organisation_id: Uuid,
) -> Result<Vec<Kpi>> {
    kpi_entity::Entity::find()
        .filter(kpi_entity::Column::OrganisationId.eq(organisation_id))
        .all(conn)
        .await
        .map_err(db_error)?
        .into_iter()
        .map(from_model)
        .collect()
}

/// The active KPIs of projects of an organisation.
pub(crate) async fn active_of_projects(
    conn: &impl ConnectionTrait,
    organisation_id: Uuid,
    project_ids: &[Uuid],
) -> Result<Vec<Kpi>> {
    let mut out = Vec::new();
    for chunk in project_ids.chunks(crate::CHUNK) {
        for m in kpi_entity::Entity::find()
            .filter(kpi_entity::Column::OrganisationId.eq(organisation_id))
            .filter(kpi_entity::Column::ProjectId.is_in(chunk.to_vec()))
            .filter(kpi_entity::Column::Archived.eq(false))
            .all(conn)
            .await
            .map_err(db_error)?
        {
            out.push(from_model(m)?);
        }
    }
    Ok(out)
}
