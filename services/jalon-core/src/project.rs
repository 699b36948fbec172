//! AI projects: what the study found matters about them, their phase and
//! status, and the history of the phases they went through.
//!
//! Phase and status never change by a plain update: only gate decisions and
//! the lifecycle actions move them (see the gate engine).

use chrono::{DateTime, NaiveDate, Utc};
use uuid::Uuid;

use crate::values::{DisplayName, Money, ShortText};

macro_rules! domain_enum {
    ($(#[$doc:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The stored (and logged) name.
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

domain_enum!(
    /// The four phases, in order, never skipped.
    Phase { Ideation => "IDEATION", Poc => "POC", Industrialisation => "INDUSTRIALISATION", Deployment => "DEPLOYMENT" }
);
domain_enum!(
    /// Where a project stands, whatever its phase.
    Status { Active => "ACTIVE", OnHold => "ON_HOLD", Stopped => "STOPPED", InProduction => "IN_PRODUCTION", Retired => "RETIRED" }
);
domain_enum!(
    /// What the project is for (half productivity, half prediction in the study).
    Usage { Productivity => "PRODUCTIVITY", Prediction => "PREDICTION", Other => "OTHER" }
);
domain_enum!(
    /// The kind of result sought.
    ResultType {
        Prediction => "PREDICTION", Classification => "CLASSIFICATION", Clustering => "CLUSTERING",
        VisualRecognition => "VISUAL_RECOGNITION", LanguageProcessing => "LANGUAGE_PROCESSING",
        Generation => "GENERATION", Recommendation => "RECOMMENDATION", Other => "OTHER",
    }
);
domain_enum!(
    /// Kinds of data the project uses (several allowed).
    DataKind {
        Structured => "STRUCTURED", Text => "TEXT", Image => "IMAGE", Audio => "AUDIO",
        Video => "VIDEO", TimeSeries => "TIME_SERIES",
    }
);
domain_enum!(
    /// How the model is obtained.
    AlgorithmApproach { OffTheShelf => "OFF_THE_SHELF", TransferLearning => "TRANSFER_LEARNING", SpecificModel => "SPECIFIC_MODEL" }
);
domain_enum!(
    /// How the model runs.
    Execution { Batch => "BATCH", RealTime => "REAL_TIME", Streaming => "STREAMING" }
);
domain_enum!(
    /// Where the model runs.
    Hosting { Cloud => "CLOUD", OnPremises => "ON_PREMISES", Edge => "EDGE" }
);
domain_enum!(
    /// The EU AI Act risk tier.
    AiActTier { Unassessed => "UNASSESSED", Minimal => "MINIMAL", Limited => "LIMITED", High => "HIGH", Prohibited => "PROHIBITED" }
);

impl Phase {
    /// The phase a GO leads to; `None` out of DEPLOYMENT (the project goes
    /// into production instead).
    pub fn next(&self) -> Option<Phase> {
        match self {
            Phase::Ideation => Some(Phase::Poc),
            Phase::Poc => Some(Phase::Industrialisation),
            Phase::Industrialisation => Some(Phase::Deployment),
            Phase::Deployment => None,
        }
    }
}

/// One stay of a project in a phase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhaseSpan {
    pub phase: Phase,
    pub enter_time: DateTime<Utc>,
    pub leave_time: Option<DateTime<Utc>>,
}

/// A project as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Project {
    pub id: Uuid,
    pub organisation_id: Uuid,
    pub details: ProjectDetails,
    pub phase: Phase,
    pub status: Status,
    pub phase_history: Vec<PhaseSpan>,
    /// A KPI's last two review periods after deployment were worse than its
    /// baseline or below its target.
    pub underperforming: bool,
    pub create_time: DateTime<Utc>,
    pub update_time: DateTime<Utc>,
    pub version: i64,
}

/// Everything a client sets on a project (Create, Update).
#[derive(Debug, Clone, PartialEq)]
pub struct ProjectDetails {
    pub name: DisplayName,
    pub description: String,
    pub business_unit: ShortText,
    pub tags: Vec<String>,
    pub objective: String,
    pub gain_quantified: bool,
    pub expected_gain: Option<Money>,
    pub usage: Option<Usage>,
    pub result_type: Option<ResultType>,
    pub data_kinds: Vec<DataKind>,
    pub algorithm_approach: Option<AlgorithmApproach>,
    pub execution: Option<Execution>,
    pub hosting: Option<Hosting>,
    pub personal_data: bool,
    pub ai_act_tier: AiActTier,
    pub ai_act_reason: String,
    pub sponsor_id: Option<Uuid>,
    pub lead_id: Option<Uuid>,
    pub planned_start: Option<NaiveDate>,
    pub planned_end: Option<NaiveDate>,
}

/// The paths `UpdateProject` accepts; `phase` and `status` are not among
/// them on purpose.
pub const UPDATABLE_FIELDS: &[&str] = &[
    "name",
    "description",
    "business_unit",
    "tags",
    "objective",
    "gain_quantified",
    "expected_gain",
    "usage",
    "result_type",
    "data_kinds",
    "algorithm_approach",
    "execution",
    "hosting",
    "personal_data",
    "ai_act_tier",
    "ai_act_reason",
    "sponsor_id",
    "lead_id",
    "planned_start_date",
    "planned_end_date",
];

/// Paths that only gate decisions and lifecycle actions change.
pub const LIFECYCLE_FIELDS: &[&str] = &["phase", "status", "phase_history"];

/// Longest description or objective, in characters.
pub const MAX_LONG_TEXT: usize = 10_000;
/// Most tags on a project.
pub const MAX_TAGS: usize = 32;

/// A tag: trimmed, lowercase, 1 to 50 characters of letters, digits, `-`,
/// `_`, `.`, `:`.
pub fn parse_tag(raw: &str) -> Result<String, String> {
    let tag = raw.trim().to_lowercase();
    if tag.is_empty() || tag.chars().count() > 50 {
        return Err(format!("'{raw}' must be 1 to 50 characters"));
    }
    if !tag
        .chars()
        .all(|c| c.is_alphanumeric() || "-_.:".contains(c))
    {
        return Err(format!("'{raw}' may only hold letters, digits and - _ . :"));
    }
    Ok(tag)
}

/// Tags, deduplicated and sorted.
pub fn parse_tags(raw: &[String]) -> Result<Vec<String>, String> {
    if raw.len() > MAX_TAGS {
        return Err(format!("at most {MAX_TAGS} tags"));
    }
    let mut tags = raw
        .iter()
        .map(|t| parse_tag(t))
        .collect::<Result<Vec<_>, _>>()?;
    tags.sort();
    tags.dedup();
    Ok(tags)
}

/// Free long text (description, objective): at most [`MAX_LONG_TEXT`]
/// characters, under the rule of [`crate::values::check_text`].
pub fn parse_long_text(raw: &str) -> Result<String, String> {
    crate::values::free_text(raw, MAX_LONG_TEXT)
}

/// Checks the rules that tie fields together, on the project as it would be
/// after a create or an update. Returns the violations, by field.
pub fn check_consistency(d: &ProjectDetails) -> Vec<(&'static str, String)> {
    let mut problems = Vec::new();
    if let (Some(start), Some(end)) = (d.planned_start, d.planned_end)
        && end < start
    {
        problems.push((
            "planned_end_date",
            "must not be before planned_start_date".to_owned(),
        ));
    }
    if d.expected_gain.is_some() && !d.gain_quantified {
        problems.push((
            "expected_gain",
            "is set while gain_quantified is false: set gain_quantified too".to_owned(),
        ));
    }
    if d.expected_gain
        .as_ref()
        .is_some_and(|g| g.minor_units() < 0)
    {
        problems.push(("expected_gain", "must not be negative".to_owned()));
    }
    if matches!(d.ai_act_tier, AiActTier::High | AiActTier::Prohibited)
        && d.ai_act_reason.trim().is_empty()
    {
        problems.push((
            "ai_act_reason",
            format!("is required when the AI Act tier is {}", d.ai_act_tier),
        ));
    }
    if d.sponsor_id.is_some() && d.sponsor_id == d.lead_id {
        problems.push((
            "sponsor_id",
            "the sponsor cannot be the project lead: sign-offs must be independent".to_owned(),
        ));
    }
    problems
}

/// Who may see a project: directors, admins, viewers and integrations see the
/// whole organisation; members see the projects they lead or sponsor.
pub fn member_sees(
    project_lead: Option<Uuid>,
    project_sponsor: Option<Uuid>,
    person: Uuid,
) -> bool {
    project_lead == Some(person) || project_sponsor == Some(person)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::values::CurrencyCode;

    fn details() -> ProjectDetails {
        ProjectDetails {
            name: DisplayName::parse("Callbot").unwrap(),
            description: String::new(),
            business_unit: ShortText::parse("Customer service").unwrap(),
            tags: vec![],
            objective: String::new(),
            gain_quantified: false,
            expected_gain: None,
            usage: Some(Usage::Productivity),
            result_type: None,
            data_kinds: vec![],
            algorithm_approach: None,
            execution: None,
            hosting: None,
            personal_data: false,
            ai_act_tier: AiActTier::Unassessed,
            ai_act_reason: String::new(),
            sponsor_id: None,
            lead_id: None,
            planned_start: None,
            planned_end: None,
        }
    }

    #[test]
    fn phases_go_in_order() {
        assert_eq!(Phase::Ideation.next(), Some(Phase::Poc));
        assert_eq!(Phase::Poc.next(), Some(Phase::Industrialisation));
        assert_eq!(Phase::Industrialisation.next(), Some(Phase::Deployment));
        assert_eq!(Phase::Deployment.next(), None);
    }

    #[test]
    fn enums_round_trip_through_their_names() {
        for tier in AiActTier::ALL {
            assert_eq!(tier.as_str().parse::<AiActTier>(), Ok(*tier));
        }
        for kind in DataKind::ALL {
            assert_eq!(kind.as_str().parse::<DataKind>(), Ok(*kind));
        }
        assert!("SOMETIMES".parse::<Status>().is_err());
    }

    #[test]
    fn tags_are_normalised() {
        assert_eq!(
            parse_tags(&["NLP".into(), " callbot ".into(), "nlp".into()]),
            Ok(vec!["callbot".into(), "nlp".into()])
        );
        assert!(parse_tags(&["".into()]).is_err());
        assert!(parse_tags(&["a b".into()]).is_err());
        assert!(parse_tags(&vec!["t".to_owned(); MAX_TAGS + 1]).is_err());
    }

    #[test]
    fn consistency_rules() {
        assert!(check_consistency(&details()).is_empty());

        let mut d = details();
        d.planned_start = NaiveDate::from_ymd_opt(2026, 3, 1);
        d.planned_end = NaiveDate::from_ymd_opt(2026, 2, 1);
        assert_eq!(check_consistency(&d)[0].0, "planned_end_date");

        let mut d = details();
        d.expected_gain = Some(Money::parse("1000", CurrencyCode::parse("EUR").unwrap()).unwrap());
        assert_eq!(check_consistency(&d)[0].0, "expected_gain");
        d.gain_quantified = true;
        assert!(check_consistency(&d).is_empty());

        let mut d = details();
        d.ai_act_tier = AiActTier::High;
        assert_eq!(check_consistency(&d)[0].0, "ai_act_reason");
        d.ai_act_reason = "recruitment (Annex III)".into();
        assert!(check_consistency(&d).is_empty());

        let mut d = details();
        let someone = Uuid::now_v7();
        d.sponsor_id = Some(someone);
        d.lead_id = Some(someone);
        assert_eq!(check_consistency(&d)[0].0, "sponsor_id");
    }

    #[test]
    fn members_see_what_they_lead_or_sponsor() {
        let (me, other) = (Uuid::now_v7(), Uuid::now_v7());
        assert!(member_sees(Some(me), None, me));
        assert!(member_sees(Some(other), Some(me), me));
        assert!(!member_sees(Some(other), Some(other), me));
        assert!(!member_sees(None, None, me));
    }
}
