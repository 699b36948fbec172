//! Assessments: at every phase, six concerns, each a checklist instantiated
//! from the organisation's question bank when the project enters the phase.

use crate::project::Phase;

macro_rules! simple_enum {
    ($(#[$doc:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
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

simple_enum!(
    /// The six concerns assessed at every phase.
    Concern {
        Data => "DATA", Algorithm => "ALGORITHM", ExpectedResult => "EXPECTED_RESULT",
        ChangeManagement => "CHANGE_MANAGEMENT", TechnicalIntegration => "TECHNICAL_INTEGRATION",
        Ethics => "ETHICS",
    }
);
simple_enum!(
    /// `MUST` items are knock-out criteria of the gate; `SHOULD` items are
    /// weighted into readiness.
    QuestionKind { Must => "MUST", Should => "SHOULD" }
);
simple_enum!(
    /// The state of an answer.
    AnswerStatus { Open => "OPEN", Done => "DONE", NotApplicable => "NOT_APPLICABLE", Blocked => "BLOCKED" }
);
simple_enum!(
    /// The risk an item carries.
    RiskLevel { Low => "LOW", Medium => "MEDIUM", High => "HIGH" }
);

/// A question of the default bank shipped with Jalon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BankQuestion {
    /// Stable key, unique in the bank, e.g. `poc.data.access-secured`.
    pub key: &'static str,
    pub phase: Phase,
    pub concern: Concern,
    pub kind: QuestionKind,
    /// Weight of a SHOULD item in readiness (1 to 10); MUST items carry 1.
    pub weight: u32,
    /// The question, in English.
    pub text: &'static str,
}

pub use crate::question_bank::DEFAULT_BANK;

/// Keys of the default questions the gate engine looks at by name.
pub mod keys {
    /// Personal data anonymised (required before leaving POC when personal
    /// data is involved).
    pub const ANONYMISATION: &str = "poc.ethics.personal-data-anonymised";
    /// Human oversight of the system's decisions (required before DEPLOYMENT
    /// for a high-risk project).
    pub const HUMAN_OVERSIGHT: &str = "industrialisation.ethics.human-oversight";
    /// Logging of the system's operation (required before DEPLOYMENT for a
    /// high-risk project).
    pub const LOGGING: &str = "industrialisation.ethics.logging";
    /// Workers informed (required before DEPLOYMENT for a high-risk project).
    pub const WORKERS_INFORMED: &str = "industrialisation.ethics.workers-informed";
}

/// One checklist item of a project, as answered so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub key: String,
    pub phase: Phase,
    pub concern: Concern,
    pub kind: QuestionKind,
    pub weight: u32,
    pub status: AnswerStatus,
}

/// Readiness of one concern (or a whole phase).
#[derive(Debug, Clone, PartialEq)]
pub struct Readiness {
    /// Weight of the SHOULD items done.
    pub done_weight: u32,
    /// Weight of the SHOULD items that apply (not N/A).
    pub applicable_weight: u32,
    /// Keys of the MUST items neither done nor N/A.
    pub must_open: Vec<String>,
}

impl Readiness {
    /// Weighted share of the applicable SHOULD items done, in 0..=1; 1 when
    /// none applies.
    pub fn ratio(&self) -> f64 {
        share(
            f64::from(self.done_weight),
            f64::from(self.applicable_weight),
        )
    }

    /// Whole percent, rounded down (what a progress bar shows).
    pub fn percent(&self) -> u32 {
        (self.done_weight * 100)
            .checked_div(self.applicable_weight)
            .unwrap_or(100)
    }
}

/// Readiness of `items` (those of one concern, or of one phase):
/// weighted share of SHOULD items done (N/A excluded), plus the MUST items
/// not done (N/A counts as settled).
pub fn readiness<'a>(items: impl IntoIterator<Item = &'a Item>) -> Readiness {
    let mut r = Readiness {
        done_weight: 0,
        applicable_weight: 0,
        must_open: Vec::new(),
    };
    for item in items {
        // The counts of one item are the one statement of the rule; an
        // item has no risk here (risk only feeds the heat map).
        let c = ItemCounts::of(item.kind, item.weight, item.status, None);
        r.applicable_weight += u32::try_from(c.should_applicable_weight).unwrap_or(u32::MAX);
        r.done_weight += u32::try_from(c.should_done_weight).unwrap_or(u32::MAX);
        if c.must_open > 0 {
            r.must_open.push(item.key.clone());
        }
    }
    r
}

/// Weighted share `done / applicable`, 1 when nothing applies.
fn share(done: f64, applicable: f64) -> f64 {
    if applicable == 0.0 {
        1.0
    } else {
        done / applicable
    }
}

/// What one item adds to its project's counts of a (phase, concern): the
/// running aggregates behind readiness and the risk heat map, kept by each
/// answer instead of re-reading the checklist. Same rules as [`readiness`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ItemCounts {
    pub should_applicable_weight: i64,
    pub should_done_weight: i64,
    pub must_open: i64,
    /// Open or blocked items rated HIGH risk.
    pub open_high_risk: i64,
}

impl ItemCounts {
    /// The counts of one item.
    pub fn of(
        kind: QuestionKind,
        weight: u32,
        status: AnswerStatus,
        risk: Option<RiskLevel>,
    ) -> Self {
        let mut c = ItemCounts::default();
        match (kind, status) {
            (QuestionKind::Should, AnswerStatus::NotApplicable) => {}
            (QuestionKind::Should, status) => {
                c.should_applicable_weight = i64::from(weight);
                if status == AnswerStatus::Done {
                    c.should_done_weight = i64::from(weight);
                }
            }
            (QuestionKind::Must, AnswerStatus::Done | AnswerStatus::NotApplicable) => {}
            (QuestionKind::Must, _) => c.must_open = 1,
        }
        if matches!(status, AnswerStatus::Open | AnswerStatus::Blocked)
            && risk == Some(RiskLevel::High)
        {
            c.open_high_risk = 1;
        }
        c
    }

    /// `self - before`: what an answer changed.
    pub fn minus(self, before: ItemCounts) -> ItemCounts {
        ItemCounts {
            should_applicable_weight: self.should_applicable_weight
                - before.should_applicable_weight,
            should_done_weight: self.should_done_weight - before.should_done_weight,
            must_open: self.must_open - before.must_open,
            open_high_risk: self.open_high_risk - before.open_high_risk,
        }
    }

    /// Adds `other`.
    pub fn add(&mut self, other: ItemCounts) {
        self.should_applicable_weight += other.should_applicable_weight;
        self.should_done_weight += other.should_done_weight;
        self.must_open += other.must_open;
        self.open_high_risk += other.open_high_risk;
    }

    pub fn is_zero(&self) -> bool {
        *self == ItemCounts::default()
    }

    /// The readiness ratio of these counts (1 when nothing applies), as
    /// [`Readiness::ratio`].
    pub fn ratio(&self) -> f64 {
        share(
            self.should_done_weight as f64,
            self.should_applicable_weight as f64,
        )
    }
}

/// An answer must justify N/A.
pub fn check_answer(status: AnswerStatus, justification: &str) -> Result<(), String> {
    if status == AnswerStatus::NotApplicable && justification.trim().is_empty() {
        return Err("is required when the status is NOT_APPLICABLE".into());
    }
    Ok(())
}

/// A question an organisation added to its bank.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomQuestion {
    pub key: String,
    pub phase: Phase,
    pub concern: Concern,
    pub kind: QuestionKind,
    pub weight: u32,
    pub text: String,
    pub added_version: i64,
    pub retired_version: Option<i64>,
}

/// A question of an organisation's bank at some version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Question {
    pub key: String,
    pub phase: Phase,
    pub concern: Concern,
    pub kind: QuestionKind,
    pub weight: u32,
    pub text: String,
    /// False for an organisation's own question.
    pub default: bool,
    pub retired: bool,
}

/// The organisation's bank at `version`: the default questions it has not
/// retired by then, and its own questions added by then and not retired.
/// `retired_defaults` maps a default key to the version that retired it.
pub fn bank_at(
    version: i64,
    retired_defaults: &[(String, i64)],
    custom: &[CustomQuestion],
    include_retired: bool,
) -> Vec<Question> {
    let retired_at = |key: &str| {
        retired_defaults
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| *v)
    };
    let mut out: Vec<Question> = DEFAULT_BANK
        .iter()
        .map(|q| Question {
            key: q.key.to_owned(),
            phase: q.phase,
            concern: q.concern,
            kind: q.kind,
            weight: q.weight,
            text: q.text.to_owned(),
            default: true,
            retired: retired_at(q.key).is_some_and(|v| v <= version),
        })
        .collect();
    out.extend(
        custom
            .iter()
            .filter(|c| c.added_version <= version)
            .map(|c| Question {
                key: c.key.clone(),
                phase: c.phase,
                concern: c.concern,
                kind: c.kind,
                weight: c.weight,
                text: c.text.clone(),
                default: false,
                retired: c.retired_version.is_some_and(|v| v <= version),
            }),
    );
    if !include_retired {
        out.retain(|q| !q.retired);
    }
    out
}

/// A key for an organisation's own question: `custom.<slug>`, slug of
/// lowercase letters, digits and hyphens, 3 to 80 characters.
pub fn parse_custom_key(raw: &str) -> Result<String, String> {
    let slug = raw.strip_prefix("custom.").unwrap_or(raw);
    let ok = (3..=80).contains(&slug.len())
        && slug
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !slug.starts_with('-')
        && !slug.ends_with('-');
    if ok {
        Ok(format!("custom.{slug}"))
    } else {
        Err("must be 3 to 80 characters of a-z, 0-9 and '-' (stored as custom.<key>)".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(key: &str, kind: QuestionKind, weight: u32, status: AnswerStatus) -> Item {
        Item {
            key: key.into(),
            phase: Phase::Poc,
            concern: Concern::Data,
            kind,
            weight,
            status,
        }
    }

    #[test]
    fn readiness_is_the_weighted_share_of_should_items_done() {
        use AnswerStatus::*;
        use QuestionKind::*;
        let items = [
            item("a", Should, 3, Done),
            item("b", Should, 1, Open),
            item("c", Should, 2, NotApplicable),
            item("d", Should, 4, Blocked),
            item("m1", Must, 1, Done),
            item("m2", Must, 1, Open),
            item("m3", Must, 1, NotApplicable),
            item("m4", Must, 1, Blocked),
        ];
        let r = readiness(&items);
        assert_eq!((r.done_weight, r.applicable_weight), (3, 8));
        assert_eq!(r.percent(), 37);
        assert!((r.ratio() - 0.375).abs() < 1e-12);
        assert_eq!(r.must_open, vec!["m2", "m4"]);
    }

    #[test]
    fn nothing_applicable_is_fully_ready() {
        let r = readiness(&[item(
            "a",
            QuestionKind::Should,
            2,
            AnswerStatus::NotApplicable,
        )]);
        assert_eq!(r.percent(), 100);
        assert!(r.must_open.is_empty());
    }

    #[test]
    fn not_applicable_needs_a_justification() {
        assert!(check_answer(AnswerStatus::NotApplicable, " ").is_err());
        assert!(check_answer(AnswerStatus::NotApplicable, "no personal data").is_ok());
        assert!(check_answer(AnswerStatus::Done, "").is_ok());
    }

    #[test]
    fn the_bank_is_versioned() {
        let default_key = DEFAULT_BANK[0].key.to_owned();
        let custom = vec![CustomQuestion {
            key: "custom.gdpr-register".into(),
            phase: Phase::Poc,
            concern: Concern::Ethics,
            kind: QuestionKind::Must,
            weight: 1,
            text: "Entered in the GDPR register".into(),
            added_version: 2,
            retired_version: Some(4),
        }];
        let retired = vec![(default_key.clone(), 3)];
        let at1 = bank_at(1, &retired, &custom, false);
        assert_eq!(at1.len(), DEFAULT_BANK.len());
        let at2 = bank_at(2, &retired, &custom, false);
        assert_eq!(at2.len(), DEFAULT_BANK.len() + 1);
        let at3 = bank_at(3, &retired, &custom, false);
        assert!(at3.iter().all(|q| q.key != default_key));
        assert_eq!(at3.len(), DEFAULT_BANK.len());
        let at4 = bank_at(4, &retired, &custom, false);
        assert_eq!(at4.len(), DEFAULT_BANK.len() - 1);
        assert_eq!(
            bank_at(4, &retired, &custom, true)
                .iter()
                .filter(|q| q.retired)
                .count(),
            2
        );
    }

    #[test]
    fn custom_keys() {
        assert_eq!(
            parse_custom_key("gdpr-register"),
            Ok("custom.gdpr-register".into())
        );
        assert_eq!(
            parse_custom_key("custom.gdpr-register"),
            Ok("custom.gdpr-register".into())
        );
        assert!(parse_custom_key("GDPR").is_err());
        assert!(parse_custom_key("a").is_err());
        assert!(parse_custom_key("poc.data.x").is_err());
    }
}
