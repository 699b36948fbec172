//! The gate engine: what must hold for a project to pass from one phase to
//! the next, who signs, and what each decision does.
//!
//! Criteria are values in a list that the engine iterates
//! ([`default_criteria`]); another module adds its own by extending the list,
//! not by editing this code.

use uuid::Uuid;

use crate::{
    Error, PreconditionViolation, Result,
    assessment::{AnswerStatus, Item, QuestionKind, keys},
    project::{AiActTier, Phase, Project, Status},
};

macro_rules! gate_enum {
    ($(#[$doc:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(&self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl std::str::FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($text => Ok($name::$variant),)+
                    other => Err(format!("unknown {} '{other}'", stringify!($name))),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

gate_enum!(
    /// The decision recorded at a gate.
    Outcome { Go => "GO", ConditionalGo => "CONDITIONAL_GO", Recycle => "RECYCLE", Hold => "HOLD", Kill => "KILL" }
);
gate_enum!(
    /// A signatory's verdict.
    Verdict { Approve => "APPROVE", Reject => "REJECT" }
);
gate_enum!(
    /// How a criterion came out.
    CriterionResult { Pass => "PASS", Fail => "FAIL", Waived => "WAIVED" }
);

/// What the criteria look at when a review is evaluated.
#[derive(Debug, Clone)]
pub struct GateContext<'a> {
    pub project: &'a Project,
    /// The phase being left.
    pub from: Phase,
    /// Every assessment item of the project (all phases instantiated so far).
    pub items: &'a [Item],
    /// Whether the sponsor is an active person.
    pub sponsor_active: bool,
    /// Conditions of earlier CONDITIONAL_GO decisions still open.
    pub open_conditions: usize,
    /// The project's active KPIs, for the KPI criteria.
    pub kpis: &'a [crate::kpi::KpiFacts],
}

/// One rule of the gate.
#[derive(Debug, Clone, Copy)]
pub struct Criterion {
    /// Stable key, reported to clients (e.g. `SPONSOR_ACTIVE`).
    pub key: &'static str,
    /// What it requires, for humans.
    pub description: &'static str,
    /// A director may waive it, with a reason.
    pub waivable: bool,
    /// Checks it: `Ok(true)` passes, `Ok(false)` does not apply (passes),
    /// `Err(why)` fails.
    pub check: fn(&GateContext) -> Result<bool, String>,
}

/// A criterion as evaluated for one review.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evaluation {
    pub key: String,
    pub description: String,
    pub result: CriterionResult,
    /// Why it failed, or the waiver's reason, or what was checked.
    pub reason: String,
    pub waivable: bool,
}

/// A director's waiver of a criterion on one review.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiver {
    pub criterion: String,
    pub reason: String,
}

fn must_items_done(ctx: &GateContext) -> Result<bool, String> {
    let open: Vec<&str> = ctx
        .items
        .iter()
        .filter(|i| i.phase == ctx.from && i.kind == QuestionKind::Must)
        .filter(|i| !matches!(i.status, AnswerStatus::Done | AnswerStatus::NotApplicable))
        .map(|i| i.key.as_str())
        .collect();
    if open.is_empty() {
        Ok(true)
    } else {
        Err(format!("MUST items not done: {}", open.join(", ")))
    }
}

fn sponsor_active(ctx: &GateContext) -> Result<bool, String> {
    match ctx.project.details.sponsor_id {
        None => Err("the project has no sponsor".into()),
        Some(_) if !ctx.sponsor_active => Err("the sponsor is no longer active".into()),
        Some(_) => Ok(true),
    }
}

fn not_prohibited(ctx: &GateContext) -> Result<bool, String> {
    if ctx.project.details.ai_act_tier == AiActTier::Prohibited {
        Err("the AI Act tier is PROHIBITED: the only decision left is KILL".into())
    } else {
        Ok(true)
    }
}

fn item_done(ctx: &GateContext, key: &str) -> bool {
    ctx.items
        .iter()
        .any(|i| i.key == key && i.status == AnswerStatus::Done)
}

fn anonymised_before_leaving_poc(ctx: &GateContext) -> Result<bool, String> {
    if ctx.from != Phase::Poc || !ctx.project.details.personal_data {
        return Ok(false);
    }
    if item_done(ctx, keys::ANONYMISATION) {
        Ok(true)
    } else {
        Err(format!(
            "personal data is involved: {} must be done before leaving POC",
            keys::ANONYMISATION
        ))
    }
}

fn high_risk_controls(ctx: &GateContext) -> Result<bool, String> {
    if ctx.from != Phase::Industrialisation || ctx.project.details.ai_act_tier != AiActTier::High {
        return Ok(false);
    }
    let missing: Vec<&str> = [keys::HUMAN_OVERSIGHT, keys::LOGGING, keys::WORKERS_INFORMED]
        .into_iter()
        .filter(|k| !item_done(ctx, k))
        .collect();
    if missing.is_empty() {
        Ok(true)
    } else {
        Err(format!(
            "a HIGH-risk system needs before DEPLOYMENT: {}",
            missing.join(", ")
        ))
    }
}

fn conditions_closed(ctx: &GateContext) -> Result<bool, String> {
    if ctx.open_conditions == 0 {
        Ok(true)
    } else {
        Err(format!(
            "{} condition(s) of an earlier CONDITIONAL_GO are still open",
            ctx.open_conditions
        ))
    }
}

/// The criteria of the lifecycle (this issue's); other modules append theirs.
pub fn default_criteria() -> Vec<Criterion> {
    vec![
        Criterion {
            key: "MUST_ITEMS_DONE",
            description: "every MUST item of the phase is done or not applicable",
            waivable: true,
            check: must_items_done,
        },
        Criterion {
            key: "SPONSOR_ACTIVE",
            description: "a named, active business sponsor",
            waivable: false,
            check: sponsor_active,
        },
        Criterion {
            key: "NOT_PROHIBITED",
            description: "the AI Act tier is not PROHIBITED (ethical avoidance)",
            waivable: false,
            check: not_prohibited,
        },
        Criterion {
            key: "PERSONAL_DATA_ANONYMISED",
            description: "personal data anonymised before leaving POC",
            waivable: true,
            check: anonymised_before_leaving_poc,
        },
        Criterion {
            key: "HIGH_RISK_CONTROLS",
            description: "human oversight, logging and informed workers before DEPLOYMENT of a HIGH-risk system",
            waivable: false,
            check: high_risk_controls,
        },
        Criterion {
            key: "CONDITIONS_CLOSED",
            description: "the conditions of an earlier CONDITIONAL_GO are closed",
            waivable: false,
            check: conditions_closed,
        },
    ]
}

/// Evaluates every criterion, applying waivers to failed waivable ones.
pub fn evaluate(criteria: &[Criterion], ctx: &GateContext, waivers: &[Waiver]) -> Vec<Evaluation> {
    criteria
        .iter()
        .map(|c| {
            let (result, reason) = match (c.check)(ctx) {
                Ok(true) => (CriterionResult::Pass, "met".to_owned()),
                Ok(false) => (CriterionResult::Pass, "does not apply".to_owned()),
                Err(why) => match waivers.iter().find(|w| w.criterion == c.key) {
                    Some(w) if c.waivable => (
                        CriterionResult::Waived,
                        format!("{why}; waived: {}", w.reason),
                    ),
                    _ => (CriterionResult::Fail, why),
                },
            };
            Evaluation {
                key: c.key.to_owned(),
                description: c.description.to_owned(),
                result,
                reason,
                waivable: c.waivable,
            }
        })
        .collect()
}

/// A required signatory of a review: the sponsor, or a person the
/// organisation's gate policy names for a function (DPO, RSSI, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signatory {
    /// `SPONSOR`, or the policy's function.
    pub function: String,
    pub person_id: Uuid,
}

/// A signature on a review.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    pub person_id: Uuid,
    pub verdict: Verdict,
}

/// The sponsor's function.
pub const SPONSOR: &str = "SPONSOR";

/// The signatories a review requires: always the sponsor, plus the policy's.
pub fn required_signatories(sponsor: Uuid, policy: &[Signatory]) -> Vec<Signatory> {
    let mut all = vec![Signatory {
        function: SPONSOR.to_owned(),
        person_id: sponsor,
    }];
    for s in policy {
        if !all.contains(s) {
            all.push(s.clone());
        }
    }
    all
}

/// The signatories of an open review once the project's sponsorship passed
/// from `from` to `to`: the sponsor's signature, if `from` has not given
/// it yet, is awaited from `to` instead. `None` when nothing changes:
/// `from` is not the review's sponsor signatory, or has already signed (a
/// signature given stands). Other functions (a policy's security officer,
/// say) are people named by the policy, not the sponsor: they stay.
pub fn hand_over_sponsor(
    required: &[Signatory],
    signatures: &[Signature],
    from: Uuid,
    to: Uuid,
) -> Option<Vec<Signatory>> {
    let waits_for_from = required
        .iter()
        .any(|s| s.function == SPONSOR && s.person_id == from);
    if !waits_for_from || signatures.iter().any(|s| s.person_id == from) {
        return None;
    }
    let mut out: Vec<Signatory> = Vec::with_capacity(required.len());
    for s in required {
        let s = if s.function == SPONSOR && s.person_id == from {
            Signatory {
                function: SPONSOR.to_owned(),
                person_id: to,
            }
        } else {
            s.clone()
        };
        if !out.contains(&s) {
            out.push(s);
        }
    }
    Some(out)
}

/// Whether `signer` may sign now: they are a required signatory, they have
/// not signed yet, and a project lead never signs for their own project as
/// its sponsor (independence).
pub fn check_signature(
    signer: Uuid,
    lead: Option<Uuid>,
    required: &[Signatory],
    signatures: &[Signature],
) -> Result<()> {
    let functions: Vec<&Signatory> = required.iter().filter(|s| s.person_id == signer).collect();
    if functions.is_empty() {
        return Err(Error::PermissionDenied(
            "you are not a required signatory of this review".into(),
        ));
    }
    if lead == Some(signer) && functions.iter().any(|s| s.function == SPONSOR) {
        return Err(Error::PermissionDenied(
            "the project lead cannot sign as the sponsor of their own project".into(),
        ));
    }
    if signatures.iter().any(|s| s.person_id == signer) {
        return Err(Error::precondition(
            "ALREADY_SIGNED",
            format!("people/{signer}"),
            "one signature per signatory per review, and it is final",
        ));
    }
    Ok(())
}

/// A condition attached to a CONDITIONAL_GO.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewCondition {
    pub description: String,
    pub owner_id: Uuid,
    pub due: chrono::NaiveDate,
}

/// What a decision does to the project.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    /// The phase after the decision (unchanged unless GO/CONDITIONAL_GO
    /// before DEPLOYMENT).
    pub phase: Phase,
    pub status: Status,
    /// Whether the project entered a new phase.
    pub advanced: bool,
}

/// Who decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decider {
    pub is_director: bool,
    pub is_sponsor: bool,
}

/// Decides a review: checks who decides, the criteria, the signatures and
/// the conditions, and returns what happens to the project. Every unmet
/// requirement is listed in the error.
pub fn decide(
    project: &Project,
    from: Phase,
    outcome: Outcome,
    decider: Decider,
    evaluations: &[Evaluation],
    required: &[Signatory],
    signatures: &[Signature],
    conditions: &[NewCondition],
) -> Result<Transition> {
    if !decider.is_director && !decider.is_sponsor {
        return Err(Error::PermissionDenied(
            "a gate is decided by a DIRECTOR or the project's sponsor".into(),
        ));
    }
    let reassessment = project.status == Status::InProduction;
    if !(project.status == Status::Active || reassessment) || project.phase != from {
        return Err(Error::precondition(
            "PROJECT_NOT_ACTIVE",
            format!("projects/{}", project.id),
            format!(
                "the project is {} in {}: a gate is decided on an ACTIVE project in the reviewed phase",
                project.status, project.phase
            ),
        ));
    }
    if reassessment && !matches!(outcome, Outcome::Recycle | Outcome::Kill) {
        return Err(Error::precondition(
            "REASSESSMENT_OUTCOME",
            format!("projects/{}", project.id),
            "a reassessment of a project in production ends in RECYCLE (back to work in DEPLOYMENT) or KILL",
        ));
    }
    let mut unmet = Vec::new();
    let subject = format!("projects/{}", project.id);
    if outcome != Outcome::Kill
        && let Some(e) = evaluations
            .iter()
            .find(|e| e.key == "NOT_PROHIBITED" && e.result == CriterionResult::Fail)
    {
        unmet.push(PreconditionViolation::new(
            e.key.clone(),
            subject.clone(),
            e.reason.clone(),
        ));
    }
    if matches!(outcome, Outcome::Go | Outcome::ConditionalGo) {
        for e in evaluations
            .iter()
            .filter(|e| e.result == CriterionResult::Fail && e.key != "NOT_PROHIBITED")
        {
            unmet.push(PreconditionViolation::new(
                e.key.clone(),
                subject.clone(),
                e.reason.clone(),
            ));
        }
        for s in required {
            match signatures.iter().find(|sig| sig.person_id == s.person_id) {
                Some(sig) if sig.verdict == Verdict::Approve => {}
                Some(_) => unmet.push(PreconditionViolation::new(
                    "SIGNATORY_REJECTED",
                    format!("people/{}", s.person_id),
                    format!("the {} rejected this gate", s.function),
                )),
                None => unmet.push(PreconditionViolation::new(
                    "SIGNATURE_MISSING",
                    format!("people/{}", s.person_id),
                    format!("the {} has not signed", s.function),
                )),
            }
        }
    }
    if !unmet.is_empty() {
        return Err(Error::FailedPrecondition(unmet));
    }
    match outcome {
        Outcome::ConditionalGo if conditions.is_empty() => {
            return Err(Error::invalid(
                "conditions",
                "a CONDITIONAL_GO needs at least one condition",
            ));
        }
        Outcome::Go | Outcome::Recycle | Outcome::Hold | Outcome::Kill
            if !conditions.is_empty() =>
        {
            return Err(Error::invalid(
                "conditions",
                "only a CONDITIONAL_GO carries conditions",
            ));
        }
        _ => {}
    }
    Ok(match outcome {
        Outcome::Go | Outcome::ConditionalGo => match from.next() {
            Some(next) => Transition {
                phase: next,
                status: Status::Active,
                advanced: true,
            },
            None => Transition {
                phase: from,
                status: Status::InProduction,
                advanced: false,
            },
        },
        Outcome::Recycle => Transition {
            phase: from,
            status: Status::Active,
            advanced: false,
        },
        Outcome::Hold => Transition {
            phase: from,
            status: Status::OnHold,
            advanced: false,
        },
        Outcome::Kill => Transition {
            phase: from,
            status: Status::Stopped,
            advanced: false,
        },
    })
}

/// A review can be requested on an ACTIVE project; on a project in
/// production only as a reassessment, by a DIRECTOR, once a KPI has flagged
/// it as underperforming.
pub fn check_can_request(project: &Project, is_director: bool) -> Result<()> {
    match project.status {
        Status::Active => Ok(()),
        Status::InProduction if project.underperforming && is_director => Ok(()),
        Status::InProduction if project.underperforming => Err(Error::PermissionDenied(
            "only a DIRECTOR opens the reassessment of a project in production".into(),
        )),
        status => Err(Error::precondition(
            "PROJECT_NOT_ACTIVE",
            format!("projects/{}", project.id),
            format!(
                "the project is {status}: a gate review needs an ACTIVE project (or, in production, an underperformance flag)"
            ),
        )),
    }
}

/// Lifecycle actions outside gates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LifecycleAction {
    /// ON_HOLD back to ACTIVE.
    Resume,
    /// IN_PRODUCTION to RETIRED.
    Retire,
}

/// The status after a lifecycle action, if it is legal now.
pub fn lifecycle(project: &Project, action: LifecycleAction) -> Result<Status> {
    match (action, project.status) {
        (LifecycleAction::Resume, Status::OnHold) => Ok(Status::Active),
        (LifecycleAction::Retire, Status::InProduction) => Ok(Status::Retired),
        (action, status) => Err(Error::precondition(
            "ILLEGAL_TRANSITION",
            format!("projects/{}", project.id),
            format!("cannot {action:?} a project that is {status}"),
        )),
    }
}

#[cfg(test)]
mod tests;

/// Builders shared by the unit tests of the gate engine and its extensions.
#[cfg(test)]
pub(crate) mod tests_support {
    use chrono::Utc;
    use uuid::Uuid;

    use crate::{
        project::{AiActTier, Phase, Project, ProjectDetails, Status},
        values::{DisplayName, ShortText},
    };

    pub fn project(phase: Phase) -> Project {
        let now = Utc::now();
        Project {
            id: Uuid::now_v7(),
            organisation_id: Uuid::now_v7(),
            details: ProjectDetails {
                name: DisplayName::parse("Callbot").unwrap(),
                description: String::new(),
                business_unit: ShortText::parse("").unwrap(),
                tags: vec![],
                objective: String::new(),
                gain_quantified: false,
                expected_gain: None,
                usage: None,
                result_type: None,
                data_kinds: vec![],
                algorithm_approach: None,
                execution: None,
                hosting: None,
                personal_data: false,
                ai_act_tier: AiActTier::Minimal,
                ai_act_reason: String::new(),
                sponsor_id: Some(Uuid::now_v7()),
                lead_id: Some(Uuid::now_v7()),
                planned_start: None,
                planned_end: None,
            },
            phase,
            status: Status::Active,
            phase_history: vec![],
            underperforming: false,
            create_time: now,
            update_time: now,
            version: 1,
        }
    }
}
