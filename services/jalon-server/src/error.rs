//! The one mapping from domain errors to gRPC statuses (AIP-193).

use jalon_core::Error;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// Longest text of a status message or of one of its violations, in
/// characters: a description may quote the caller's value, and the status
/// travels in HTTP/2 headers, which the client bounds (16 KiB by default);
/// an unbounded quote would turn an INVALID_ARGUMENT into a protocol error.
const MAX_TEXT_CHARS: usize = 300;

/// `text`, cut to [`MAX_TEXT_CHARS`] with an ellipsis.
fn bounded(text: String) -> String {
    match text.char_indices().nth(MAX_TEXT_CHARS) {
        None => text,
        Some((cut, _)) => format!("{}…", &text[..cut]),
    }
}

/// Converts a domain error into the status the client sees. Internal causes
/// were logged where they happened; the client gets a generic message.
pub fn to_status(err: Error) -> Status {
    match err {
        Error::InvalidArgument(violations) => {
            let violations: Vec<_> = violations
                .into_iter()
                .map(|v| jalon_core::FieldViolation::new(bounded(v.field), bounded(v.description)))
                .collect();
            let message = bounded(err_message(&Error::InvalidArgument(violations.clone())));
            let mut details = ErrorDetails::new();
            for v in violations {
                details.add_bad_request_violation(v.field, v.description);
            }
            Status::with_error_details(Code::InvalidArgument, message, details)
        }
        Error::FailedPrecondition(violations) => {
            let message = bounded(err_message(&Error::FailedPrecondition(violations.clone())));
            let mut details = ErrorDetails::new();
            for v in violations {
                details.add_precondition_failure_violation(
                    v.kind,
                    bounded(v.subject),
                    bounded(v.description),
                );
            }
            Status::with_error_details(Code::FailedPrecondition, message, details)
        }
        Error::NotFound { resource } => Status::not_found(format!("{resource} not found")),
        Error::AlreadyExists(message) => Status::already_exists(bounded(message)),
        Error::PermissionDenied(message) => Status::permission_denied(bounded(message)),
        Error::Aborted(message) => Status::aborted(bounded(message)),
        Error::Unauthenticated => Status::unauthenticated("missing or invalid credentials"),
        Error::Unavailable(message) => Status::unavailable(message),
        Error::Internal(cause) => {
            tracing::error!(%cause, "internal error");
            Status::internal("internal error")
        }
    }
}

fn err_message(err: &Error) -> String {
    err.to_string()
}

/// `?`-friendly conversion of domain results in handlers.
pub trait OrStatus<T> {
    fn or_status(self) -> Result<T, Status>;
}

impl<T> OrStatus<T> for Result<T, Error> {
    fn or_status(self) -> Result<T, Status> {
        self.map_err(to_status)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_argument_carries_field_violations() {
        let status = to_status(Error::invalid("organisation.slug", "bad"));
        assert_eq!(status.code(), Code::InvalidArgument);
        let details = status.get_error_details();
        let bad = details.bad_request().expect("bad request details");
        assert_eq!(bad.field_violations[0].field, "organisation.slug");
    }

    #[test]
    fn a_quoted_value_cannot_grow_a_status_beyond_its_headers() {
        let huge = "€".repeat(20_000);
        let status = to_status(Error::invalid(
            "organisation_id",
            format!("'{huge}' is not a valid id (a UUID)"),
        ));
        assert!(status.message().chars().count() <= MAX_TEXT_CHARS + 1);
        let details = status.get_error_details();
        let bad = details.bad_request().expect("bad request details");
        assert_eq!(bad.field_violations[0].field, "organisation_id");
        assert!(bad.field_violations[0].description.ends_with('…'));
        assert!(bad.field_violations[0].description.chars().count() <= MAX_TEXT_CHARS + 1);
    }

    #[test]
    fn internal_errors_hide_their_cause() {
        let status = to_status(Error::Internal("secret table name".into()));
        assert_eq!(status.code(), Code::Internal);
        assert!(!status.message().contains("secret"));
    }

    #[test]
    fn preconditions_are_listed() {
        let status = to_status(Error::precondition("LAST_ADMIN", "people/x", "keep one"));
        assert_eq!(status.code(), Code::FailedPrecondition);
        let details = status.get_error_details();
        assert_eq!(
            details.precondition_failure().map(|p| p.violations.len()),
            Some(1)
        );
    }
}
