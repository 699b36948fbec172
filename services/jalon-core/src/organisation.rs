//! Organisations: the tenants.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::values::{CurrencyCode, DiscountRate, DisplayName, ExternalRef, Month, Slug};

/// An organisation as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Organisation {
    pub id: Uuid,
    pub display_name: String,
    pub slug: String,
    pub default_currency: String,
    pub discount_rate: String,
    pub fiscal_year_start_month: u8,
    /// Days a project may stay in a phase before its gate is overdue.
    pub gate_overdue_days: u32,
    pub external_ref: Option<String>,
    pub create_time: DateTime<Utc>,
    pub update_time: DateTime<Utc>,
    pub delete_time: Option<DateTime<Utc>>,
    pub version: i64,
}

impl Organisation {
    pub fn is_deleted(&self) -> bool {
        self.delete_time.is_some()
    }
}

/// A validated new organisation.
#[derive(Debug, Clone, PartialEq)]
pub struct NewOrganisation {
    pub display_name: DisplayName,
    pub slug: Slug,
    pub default_currency: CurrencyCode,
    pub discount_rate: DiscountRate,
    pub fiscal_year_start_month: Month,
    pub external_ref: Option<ExternalRef>,
    pub gate_overdue_days: u32,
}

/// A validated change: `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OrganisationPatch {
    pub display_name: Option<DisplayName>,
    pub slug: Option<Slug>,
    pub default_currency: Option<CurrencyCode>,
    pub discount_rate: Option<DiscountRate>,
    pub fiscal_year_start_month: Option<Month>,
    pub gate_overdue_days: Option<u32>,
    pub external_ref: Option<Option<ExternalRef>>,
}

/// The paths `UpdateOrganisation` accepts in its field mask.
pub const UPDATABLE_FIELDS: &[&str] = &[
    "display_name",
    "slug",
    "default_currency",
    "discount_rate",
    "fiscal_year_start_month",
    "external_ref",
    "gate_overdue_days",
];

/// An etag is the row version, rendered opaque to clients.
pub fn etag(version: i64) -> String {
    format!("W/\"{version}\"")
}

/// Whether a client's etag (empty: no check) matches the stored version.
pub fn etag_matches(client: &str, version: i64) -> bool {
    client.is_empty() || client == etag(version)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etag_round_trip() {
        assert!(etag_matches("", 3));
        assert!(etag_matches(&etag(3), 3));
        assert!(!etag_matches(&etag(2), 3));
        assert!(!etag_matches("3", 3));
    }
}
