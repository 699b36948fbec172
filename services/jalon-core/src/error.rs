//! The one error type of the domain. The server maps it to `tonic::Status` in
//! one place (`jalon-server/src/error.rs`).

use std::fmt;

/// A result whose error is the domain [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A bad field of a request: `field` is the path as the client wrote it
/// (e.g. `organisation.slug`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    pub field: String,
    pub description: String,
}

impl FieldViolation {
    pub fn new(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            description: description.into(),
        }
    }
}

/// An unmet precondition: `kind` is a stable machine-readable code (e.g.
/// `LAST_ADMIN`), `subject` what it is about, `description` for humans.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreconditionViolation {
    pub kind: String,
    pub subject: String,
    pub description: String,
}

impl PreconditionViolation {
    pub fn new(
        kind: impl Into<String>,
        subject: impl Into<String>,
        description: impl Into<String>,
    ) -> Self {
        Self {
            kind: kind.into(),
            subject: subject.into(),
            description: description.into(),
        }
    }
}

/// Everything that can go wrong, in the words of the domain.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The request is malformed; each bad field is listed.
    #[error("invalid argument: {}", describe_fields(.0))]
    InvalidArgument(Vec<FieldViolation>),
    /// The resource does not exist, or belongs to an organisation the caller
    /// cannot see (the two are indistinguishable on purpose).
    #[error("{resource} not found")]
    NotFound { resource: &'static str },
    /// A uniqueness rule is broken.
    #[error("{0}")]
    AlreadyExists(String),
    /// The caller is known but its role does not allow the action.
    #[error("{0}")]
    PermissionDenied(String),
    /// A rule of the domain forbids the action now; each unmet rule is listed.
    #[error("failed precondition: {}", describe_preconditions(.0))]
    FailedPrecondition(Vec<PreconditionViolation>),
    /// A concurrent change won (stale etag, lost race).
    #[error("{0}")]
    Aborted(String),
    /// No valid credentials. Never says why, on purpose.
    #[error("unauthenticated")]
    Unauthenticated,
    /// The database (or another dependency) cannot be reached now.
    #[error("service unavailable: {0}")]
    Unavailable(String),
    /// A bug or an unexpected failure; the cause is logged, not returned.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// One bad field.
    pub fn invalid(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self::InvalidArgument(vec![FieldViolation::new(field, description)])
    }

    /// One unmet precondition.
    pub fn precondition(
        kind: impl Into<String>,
        subject: impl Into<String>,
        description: impl Into<String>,
    ) -> Self {
        Self::FailedPrecondition(vec![PreconditionViolation::new(kind, subject, description)])
    }

    /// A stale etag.
    pub fn stale_etag(resource: &str) -> Self {
        Self::Aborted(format!(
            "the {resource} was changed by someone else (etag mismatch): read it again and retry"
        ))
    }
}

fn describe_fields(violations: &[FieldViolation]) -> String {
    violations
        .iter()
        .map(|v| format!("{}: {}", v.field, v.description))
        .collect::<Vec<_>>()
        .join("; ")
}

fn describe_preconditions(violations: &[PreconditionViolation]) -> String {
    violations
        .iter()
        .map(|v| v.description.as_str())
        .collect::<Vec<_>>()
        .join("; ")
}

/// Collects field violations while a request is parsed, so that the client
/// learns about every bad field at once.
#[derive(Default)]
pub struct Violations(Vec<FieldViolation>);

impl Violations {
    pub fn new() -> Self {
        Self::default()
    }

    /// Keeps the value of a parse, or records its violation under `field`.
    pub fn check<T>(&mut self, field: &str, parsed: Result<T, String>) -> Option<T> {
        match parsed {
            Ok(value) => Some(value),
            Err(description) => {
                self.0.push(FieldViolation::new(field, description));
                None
            }
        }
    }

    /// Records a violation.
    pub fn push(&mut self, field: impl Into<String>, description: impl Into<String>) {
        self.0.push(FieldViolation::new(field, description));
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `Ok` when nothing was recorded.
    pub fn finish(self) -> Result<()> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(Error::InvalidArgument(self.0))
        }
    }
}

impl fmt::Debug for Violations {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(&self.0).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn violations_collect_every_bad_field() {
        let mut v = Violations::new();
        assert_eq!(v.check::<u8>("a", Err("bad a".into())), None);
        assert_eq!(v.check("b", Ok(2u8)), Some(2));
        v.push("c", "bad c");
        let err = v.finish().unwrap_err();
        assert_eq!(
            err,
            Error::InvalidArgument(vec![
                FieldViolation::new("a", "bad a"),
                FieldViolation::new("c", "bad c"),
            ])
        );
    }

    #[test]
    fn empty_violations_finish_ok() {
        assert_eq!(Violations::new().finish(), Ok(()));
    }
}
