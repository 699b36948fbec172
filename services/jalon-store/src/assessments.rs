//! Question banks and the assessment items of projects.

use chrono::Utc;
use jalon_core::{
    Error, Result,
    assessment::{
        AnswerStatus, Concern, CustomQuestion, DEFAULT_BANK, Item, ItemCounts, Question,
        QuestionKind, RiskLevel, bank_at,
    },
    authz::Action,
    organisation::etag_matches,
    project::Phase,
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
    entity::{assessment_item as item, bank_question, bank_retirement, question_bank},
    error::{db_error, unique_violation},
};

/// The current version of an organisation's bank (0: the defaults as
/// shipped).
pub async fn bank_version(conn: &impl ConnectionTrait, organisation_id: Uuid) -> Result<i64> {
    Ok(question_bank::Entity::find_by_id(organisation_id)
        .one(conn)
        .await
        .map_err(db_error)?
        .map_or(0, |b| b.version))
}

async fn bump_version(conn: &impl ConnectionTrait, organisation_id: Uuid) -> Result<i64> {
    let current = bank_version(conn, organisation_id).await?;
    let next = question_bank::ActiveModel {
        organisation_id: Set(organisation_id),
        version: Set(current + 1),
    };
    if current == 0 {
        next.insert(conn).await.map_err(db_error)?;
    } else {
        next.update(conn).await.map_err(db_error)?;
    }
    Ok(current + 1)
}

fn custom_from(m: bank_question::Model) -> Option<CustomQuestion> {
    Some(CustomQuestion {
        key: m.key,
        phase: m.phase.parse().ok()?,
        concern: m.concern.parse().ok()?,
        kind: m.kind.parse().ok()?,
        weight: u32::try_from(m.weight).ok()?,
        text: m.text,
        added_version: m.added_version,
        retired_version: m.retired_version,
    })
}

/// The bank at its current version.
pub async fn bank(
    conn: &impl ConnectionTrait,
    organisation_id: Uuid,
    include_retired: bool,
) -> Result<(i64, Vec<Question>)> {
    let version = bank_version(conn, organisation_id).await?;
    let retired: Vec<(String, i64)> = bank_retirement::Entity::find()
        .filter(bank_retirement::Column::OrganisationId.eq(organisation_id))
        .all(conn)
        .await
        .map_err(db_error)?
        .into_iter()
        .map(|r| (r.key, r.retired_version))
        .collect();
    let custom: Vec<CustomQuestion> = bank_question::Entity::find()
        .filter(bank_question::Column::OrganisationId.eq(organisation_id))
        .all(conn)
        .await
        .map_err(db_error)?
        .into_iter()
        .filter_map(custom_from)
        .collect();
    let mut questions = bank_at(version, &retired, &custom, include_retired);
    questions.sort_by(|a, b| (a.phase, a.concern, &a.key).cmp(&(b.phase, b.concern, &b.key)));
    Ok((version, questions))
}

/// A new question of the organisation's own.
#[derive(Debug, Clone)]
pub struct NewQuestion {
    pub key: String,
    pub phase: Phase,
    pub concern: Concern,
    pub kind: QuestionKind,
    pub weight: u32,
    pub text: String,
}

/// Adds a question; returns it and the bank's new version.
pub async fn create_question(
    db: &DatabaseConnection,
    organisation_id: Uuid,
    new: &NewQuestion,
    caller: &Caller,
) -> Result<(Question, i64)> {
    let mut change = Change::begin(db, organisation_id, caller, Action::CreateQuestion).await?;
    change.lock_organisation().await?;
    let version = bump_version(change.conn(), organisation_id).await?;
    let inserted = bank_question::ActiveModel {
        organisation_id: Set(organisation_id),
        key: Set(new.key.clone()),
        phase: Set(new.phase.as_str().to_owned()),
        concern: Set(new.concern.as_str().to_owned()),
        kind: Set(new.kind.as_str().to_owned()),
        weight: Set(i32::try_from(new.weight).unwrap_or(1)),
        text: Set(new.text.clone()),
        added_version: Set(version),
        retired_version: Set(None),
    }
    .insert(change.conn())
    .await;
    match inserted {
        Ok(_) => {}
        Err(e) if unique_violation(&e).is_some() => {
            return Err(Error::AlreadyExists(format!(
                "a question with the key {} already exists",
                new.key
            )));
        }
        Err(e) => return Err(db_error(e)),
    }
    let question = Question {
        key: new.key.clone(),
        phase: new.phase,
        concern: new.concern,
        kind: new.kind,
        weight: new.weight,
        text: new.text.clone(),
        default: false,
        retired: false,
    };
    change.event(NewEvent {
        project_id: None,
        action: "question.created",
        resource_type: "question",
        resource_id: new.key.clone(),
        before: None,
        after: json!({"key": new.key, "phase": new.phase.as_str(), "concern": new.concern.as_str(), "kind": new.kind.as_str(), "weight": new.weight, "text": new.text, "bank_version": version}),
        chained: false,
    });
    change.commit().await?;
    Ok((question, version))
}

/// Retires a question for future instantiations.
pub async fn retire_question(
    db: &DatabaseConnection,
    organisation_id: Uuid,
    key: &str,
    caller: &Caller,
) -> Result<(Question, i64)> {
    let mut change = Change::begin(db, organisation_id, caller, Action::RetireQuestion).await?;
    change.lock_organisation().await?;
    let (_, questions) = bank(change.conn(), organisation_id, true).await?;
    let mut question = questions
        .into_iter()
        .find(|q| q.key == key)
        .ok_or(Error::NotFound {
            resource: "question",
        })?;
    if question.retired {
        return Err(Error::precondition(
            "ALREADY_RETIRED",
            format!("questions/{key}"),
            "the question is already retired",
        ));
    }
    let version = bump_version(change.conn(), organisation_id).await?;
    if question.default {
        bank_retirement::ActiveModel {
            organisation_id: Set(organisation_id),
            key: Set(key.to_owned()),
            retired_version: Set(version),
        }
        .insert(change.conn())
        .await
        .map_err(db_error)?;
    } else {
        bank_question::ActiveModel {
            organisation_id: Set(organisation_id),
            key: Set(key.to_owned()),
            retired_version: Set(Some(version)),
            ..Default::default()
        }
        .update(change.conn())
        .await
        .map_err(db_error)?;
    }
    question.retired = true;
    change.event(NewEvent {
        project_id: None,
        action: "question.retired",
        resource_type: "question",
        resource_id: key.to_owned(),
        before: Some(json!({"retired": false})),
        after: json!({"retired": true, "bank_version": version}),
        chained: false,
    });
    change.commit().await?;
    Ok((question, version))
}

/// Instantiates the checklist of `phase` for a project from the bank at its
/// current version (inside the caller's transaction).
pub(crate) async fn instantiate(
    conn: &impl ConnectionTrait,
    organisation_id: Uuid,
    project_id: Uuid,
    phase: Phase,
) -> Result<()> {
    let (version, questions) = bank(conn, organisation_id, false).await?;
    let rows: Vec<item::ActiveModel> = questions
        .into_iter()
        .filter(|q| q.phase == phase)
        .map(|q| item::ActiveModel {
            project_id: Set(project_id),
            key: Set(q.key),
            organisation_id: Set(organisation_id),
            phase: Set(q.phase.as_str().to_owned()),
            concern: Set(q.concern.as_str().to_owned()),
            kind: Set(q.kind.as_str().to_owned()),
            weight: Set(i32::try_from(q.weight).unwrap_or(1)),
            text: Set(q.text),
            bank_version: Set(version),
            status: Set(AnswerStatus::Open.as_str().to_owned()),
            risk: Set(None),
            note: Set(String::new()),
            evidence_uri: Set(String::new()),
            justification: Set(String::new()),
            answered_by: Set(None),
            answer_time: Set(None),
            version: Set(1),
        })
        .collect();
    let mut counts = Vec::with_capacity(rows.len());
    for chunk in rows.chunks(200) {
        item::Entity::insert_many(chunk.to_vec())
            .exec(conn)
            .await
            .map_err(db_error)?;
    }
    for r in &rows {
        if let (Set(kind), Set(weight), Set(concern)) = (&r.kind, &r.weight, &r.concern) {
            let kind = kind.parse().map_err(Error::Internal)?;
            let concern = concern.parse().map_err(Error::Internal)?;
            counts.push((
                project_id,
                phase,
                concern,
                ItemCounts::of(
                    kind,
                    u32::try_from(*weight).unwrap_or(1),
                    AnswerStatus::Open,
                    None,
                ),
            ));
        }
    }
    crate::aggregates::add_item_counts(conn, organisation_id, counts).await
}

/// A stored item.
pub type ItemRow = item::Model;

/// The domain view of stored items (for readiness and the gate engine).
pub fn domain_items(rows: &[ItemRow]) -> Result<Vec<Item>> {
    rows.iter()
        .map(|r| {
            let bad = |e: String| {
                crate::error::unknown(
                    "assessment_items",
                    format!("({}, {})", r.project_id, r.key),
                    e,
                )
            };
            Ok(Item {
                key: r.key.clone(),
                phase: r.phase.parse().map_err(bad)?,
                concern: r.concern.parse().map_err(bad)?,
                kind: r.kind.parse().map_err(bad)?,
                weight: u32::try_from(r.weight).map_err(|e| bad(e.to_string()))?,
                status: r.status.parse().map_err(bad)?,
            })
        })
        .collect()
}

/// A project's items, by phase, concern and key.
pub async fn items(
    conn: &impl ConnectionTrait,
    project_id: Uuid,
    phase: Option<Phase>,
    concern: Option<Concern>,
) -> Result<Vec<ItemRow>> {
    let mut query = item::Entity::find().filter(item::Column::ProjectId.eq(project_id));
    if let Some(p) = phase {
        query = query.filter(item::Column::Phase.eq(p.as_str()));
    }
    if let Some(c) = concern {
        query = query.filter(item::Column::Concern.eq(c.as_str()));
    }
    let mut rows = query
        .order_by_asc(item::Column::Key)
        .all(conn)
        .await
        .map_err(db_error)?;
    rows.sort_by_key(|r| {
        (
            r.phase.parse::<Phase>().ok(),
            r.concern.parse::<Concern>().ok(),
            r.key.clone(),
        )
    });
    Ok(rows)
}

/// An answer.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: AnswerStatus,
    pub risk: Option<RiskLevel>,
    pub note: String,
    pub evidence_uri: String,
    pub justification: String,
}

/// Answers one item of the project's current phase; compare-and-swap on the
/// item's version.
pub async fn answer(
    db: &DatabaseConnection,
    organisation_id: Uuid,
    project_id: Uuid,
    key: &str,
    answer: &Answer,
    etag: &str,
    caller: &Caller,
) -> Result<ItemRow> {
    let mut change =
        Change::begin(db, organisation_id, caller, Action::AnswerAssessmentItem).await?;
    let current_phase = change.project_for(project_id, "project").await?.phase;
    change.touch(project_id);
    let current = item::Entity::find_by_id((project_id, key.to_owned()))
        .one(change.conn())
        .await
        .map_err(db_error)?
        .ok_or(Error::NotFound {
            resource: "assessment item",
        })?;
    if !etag_matches(etag, current.version) {
        return Err(Error::stale_etag("assessment item"));
    }
    if current.phase != current_phase.as_str() {
        return Err(Error::precondition(
            "PHASE_CLOSED",
            format!("items/{key}"),
            format!(
                "the item belongs to {}, and the project is in {current_phase}: past phases are closed",
                current.phase
            ),
        ));
    }
    let model = item::ActiveModel {
        status: Set(answer.status.as_str().to_owned()),
        risk: Set(answer.risk.map(|r| r.as_str().to_owned())),
        note: Set(answer.note.clone()),
        evidence_uri: Set(answer.evidence_uri.clone()),
        justification: Set(answer.justification.clone()),
        answered_by: Set(change.actor().person_id),
        answer_time: Set(Some(Utc::now())),
        version: Set(current.version + 1),
        ..Default::default()
    };
    let result = item::Entity::update_many()
        .set(model)
        .filter(item::Column::ProjectId.eq(project_id))
        .filter(item::Column::Key.eq(key))
        .filter(item::Column::Version.eq(current.version))
        .exec(change.conn())
        .await
        .map_err(db_error)?;
    if result.rows_affected == 0 {
        return Err(Error::stale_etag("assessment item"));
    }
    let updated = item::Entity::find_by_id((project_id, key.to_owned()))
        .one(change.conn())
        .await
        .map_err(db_error)?
        .ok_or(Error::NotFound {
            resource: "assessment item",
        })?;
    let view = |r: &ItemRow| json!({"status": r.status, "risk": r.risk, "note": r.note, "evidence_uri": r.evidence_uri, "justification": r.justification});
    let (phase, concern, after) = crate::aggregates::item_counts(&updated)?;
    let (_, _, before) = crate::aggregates::item_counts(&current)?;
    crate::aggregates::add_item_counts(
        change.conn(),
        organisation_id,
        [(project_id, phase, concern, after.minus(before))],
    )
    .await?;
    change.event(NewEvent {
        project_id: Some(project_id),
        action: "assessment.answered",
        resource_type: "assessment_item",
        resource_id: key.to_owned(),
        before: Some(view(&current)),
        after: view(&updated),
        chained: false,
    });
    change.commit().await?;
    Ok(updated)
}

/// Whether a key names a default question (unused defaults are still valid
/// keys to retire).
pub fn is_default_key(key: &str) -> bool {
    DEFAULT_BANK.iter().any(|q| q.key == key)
}
