//! People: the members of an organisation, with one role each.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::{
    Error, Result,
    authz::Role,
    values::{DisplayName, Email, ExternalRef, ShortText, Subject},
};

/// A person as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Person {
    pub id: Uuid,
    pub organisation_id: Uuid,
    pub subject: String,
    pub email: String,
    pub display_name: String,
    pub department: String,
    pub job_title: String,
    pub manager_id: Option<Uuid>,
    pub role: Role,
    pub active: bool,
    pub external_id: Option<String>,
    pub create_time: DateTime<Utc>,
    pub update_time: DateTime<Utc>,
    pub deactivate_time: Option<DateTime<Utc>>,
    pub version: i64,
}

/// A validated new person.
#[derive(Debug, Clone, PartialEq)]
pub struct NewPerson {
    pub subject: Subject,
    pub email: Email,
    pub display_name: DisplayName,
    pub department: ShortText,
    pub job_title: ShortText,
    pub manager_id: Option<Uuid>,
    pub role: Role,
    pub external_id: Option<ExternalRef>,
}

/// A validated change: `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PersonPatch {
    pub subject: Option<Subject>,
    pub email: Option<Email>,
    pub display_name: Option<DisplayName>,
    pub department: Option<ShortText>,
    pub job_title: Option<ShortText>,
    pub manager_id: Option<Option<Uuid>>,
    pub role: Option<Role>,
    pub external_id: Option<Option<ExternalRef>>,
}

impl PersonPatch {
    /// The patch without the fields that already hold the value it sets:
    /// what an upsert really changes (empty: nothing to write, nothing to
    /// record).
    pub fn without_unchanged(&self, current: &Person) -> PersonPatch {
        fn keep<T: Clone>(value: &Option<T>, same: impl Fn(&T) -> bool) -> Option<T> {
            value.as_ref().filter(|v| !same(v)).cloned()
        }
        PersonPatch {
            subject: keep(&self.subject, |v| v.as_str() == current.subject),
            email: keep(&self.email, |v| v.as_str() == current.email),
            display_name: keep(&self.display_name, |v| v.as_str() == current.display_name),
            department: keep(&self.department, |v| v.as_str() == current.department),
            job_title: keep(&self.job_title, |v| v.as_str() == current.job_title),
            manager_id: keep(&self.manager_id, |v| *v == current.manager_id),
            role: keep(&self.role, |v| *v == current.role),
            external_id: keep(&self.external_id, |v| {
                v.as_ref().map(|e| e.as_str()) == current.external_id.as_deref()
            }),
        }
    }

    /// Whether the patch changes nothing.
    pub fn is_empty(&self) -> bool {
        *self == PersonPatch::default()
    }
}

/// The paths `UpdatePerson` accepts in its field mask.
pub const UPDATABLE_FIELDS: &[&str] = &[
    "subject",
    "email",
    "display_name",
    "department",
    "job_title",
    "manager_id",
    "role",
    "external_id",
];

/// The paths `UpsertPerson` accepts in its field mask: those of
/// `UpdatePerson` but `external_id`, which names the person.
pub const UPSERTABLE_FIELDS: &[&str] = &[
    "subject",
    "email",
    "display_name",
    "department",
    "job_title",
    "manager_id",
    "role",
];

/// Roles an `INTEGRATION` account (an HR system) may give to the people it
/// creates. Raising someone to ADMIN, DIRECTOR or INTEGRATION is an ADMIN's
/// decision.
pub const ROLES_AN_INTEGRATION_MAY_GRANT: &[Role] = &[Role::Member, Role::Viewer];

/// The organisation must keep at least one active administrator: a change
/// that would leave `remaining_active_admins` at zero is refused.
pub fn ensure_an_admin_remains(remaining_active_admins: u64, person_id: Uuid) -> Result<()> {
    if remaining_active_admins == 0 {
        Err(Error::precondition(
            "LAST_ADMIN",
            format!("people/{person_id}"),
            "this person is the organisation's last active ADMIN: make someone else ADMIN first",
        ))
    } else {
        Ok(())
    }
}

/// Whether a change takes an active admin out of the admins: a demotion or a
/// deactivation.
pub fn removes_an_admin(current: &Person, new_role: Option<Role>, deactivating: bool) -> bool {
    current.active
        && current.role == Role::Admin
        && (deactivating || new_role.is_some_and(|role| role != Role::Admin))
}

/// A person cannot be their own manager, and management chains cannot loop:
/// `chain` is the manager's chain upwards (manager, their manager, ...).
pub fn ensure_no_management_cycle(person_id: Uuid, chain: &[Uuid]) -> Result<()> {
    if chain.contains(&person_id) {
        Err(Error::invalid(
            "person.manager_id",
            "a person cannot be their own manager, directly or through others",
        ))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn person(role: Role, active: bool) -> Person {
        let now = Utc::now();
        Person {
            id: Uuid::nil(),
            organisation_id: Uuid::nil(),
            subject: "s".into(),
            email: "s@example.com".into(),
            display_name: "S".into(),
            department: String::new(),
            job_title: String::new(),
            manager_id: None,
            role,
            active,
            external_id: None,
            create_time: now,
            update_time: now,
            deactivate_time: None,
            version: 1,
        }
    }

    #[test]
    fn demoting_or_deactivating_an_active_admin_removes_an_admin() {
        let admin = person(Role::Admin, true);
        assert!(removes_an_admin(&admin, Some(Role::Member), false));
        assert!(removes_an_admin(&admin, None, true));
        assert!(!removes_an_admin(&admin, Some(Role::Admin), false));
        assert!(!removes_an_admin(&admin, None, false));
        assert!(!removes_an_admin(
            &person(Role::Admin, false),
            Some(Role::Member),
            false
        ));
        assert!(!removes_an_admin(&person(Role::Member, true), None, true));
    }

    #[test]
    fn the_last_admin_stays() {
        assert!(ensure_an_admin_remains(1, Uuid::nil()).is_ok());
        let err = ensure_an_admin_remains(0, Uuid::nil()).unwrap_err();
        assert!(matches!(err, Error::FailedPrecondition(v) if v[0].kind == "LAST_ADMIN"));
    }

    #[test]
    fn management_cycles_are_refused() {
        let me = Uuid::now_v7();
        let boss = Uuid::now_v7();
        assert!(ensure_no_management_cycle(me, &[boss]).is_ok());
        assert!(ensure_no_management_cycle(me, &[me]).is_err());
        assert!(ensure_no_management_cycle(me, &[boss, me]).is_err());
    }

    #[test]
    fn an_upsert_patch_keeps_only_what_differs() {
        let current = person(Role::Member, true);
        let patch = PersonPatch {
            subject: Some(Subject::parse("s").unwrap()),
            display_name: Some(DisplayName::parse("S").unwrap()),
            job_title: Some(ShortText::parse("Director").unwrap()),
            role: Some(Role::Member),
            manager_id: Some(None),
            ..PersonPatch::default()
        };
        let left = patch.without_unchanged(&current);
        assert_eq!(
            left,
            PersonPatch {
                job_title: Some(ShortText::parse("Director").unwrap()),
                ..PersonPatch::default()
            }
        );
        assert!(!left.is_empty());
        assert!(
            left.without_unchanged(&Person {
                job_title: "Director".into(),
                ..current
            })
            .is_empty()
        );
    }

    #[test]
    fn integrations_grant_plain_roles_only() {
        assert!(ROLES_AN_INTEGRATION_MAY_GRANT.contains(&Role::Member));
        assert!(!ROLES_AN_INTEGRATION_MAY_GRANT.contains(&Role::Admin));
    }
}
