//! SCIM 2.0 provisioning (RFC 7643/7644) in the words of the domain: what a
//! SCIM User or Group write leaves on a person, how a person's role follows
//! the groups they are in, which attribute of a User is the token subject,
//! and the filters the store translates to SQL. The protocol itself (JSON,
//! PATCH, the filter grammar) lives in the server.

use std::{fmt, str::FromStr};

use uuid::Uuid;

use crate::{
    Error, Result,
    authz::Role,
    values::{DisplayName, Email, ExternalRef, ShortText, Subject},
};

/// Which SCIM User attribute becomes the person's token subject (the JWT
/// claim named by `auth.subject_claim`): `auth.scim_subject_attribute`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SubjectAttribute {
    /// `userName` as sent (e.g. Okta's login, Entra's userPrincipalName).
    #[default]
    UserName,
    /// `externalId` (e.g. Entra's objectId mapped to externalId, matching
    /// the `oid` claim).
    ExternalId,
}

impl SubjectAttribute {
    pub fn as_str(&self) -> &'static str {
        match self {
            SubjectAttribute::UserName => "userName",
            SubjectAttribute::ExternalId => "externalId",
        }
    }
}

impl FromStr for SubjectAttribute {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "userName" => Ok(Self::UserName),
            "externalId" => Ok(Self::ExternalId),
            other => Err(format!(
                "'{other}' is not a SCIM User attribute Jalon can take the subject from: use userName or externalId"
            )),
        }
    }
}

impl fmt::Display for SubjectAttribute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A SCIM userName: 1 to 255 bytes, no surrounding whitespace or control
/// characters; unique per organisation regardless of case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserName(String);

impl UserName {
    pub fn parse(raw: &str) -> std::result::Result<Self, String> {
        // The rules of a subject: a userName may become one.
        Subject::parse(raw).map(|s| Self(s.as_str().to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The form uniqueness is decided on.
    pub fn key(&self) -> String {
        self.0.to_lowercase()
    }
}

/// Everything a SCIM User write leaves on a person and its link, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct UserState {
    pub user_name: UserName,
    pub external_id: Option<ExternalRef>,
    pub display_name: DisplayName,
    /// The SCIM attributes kept as sent (`name`, `displayName`, `emails`):
    /// a JSON object, as text.
    pub profile_json: String,
    /// The primary (or first) address: the person's e-mail.
    pub email: Email,
    pub title: ShortText,
    pub department: ShortText,
    pub manager_id: Option<Uuid>,
    pub active: bool,
}

impl UserState {
    /// The person's token subject under `attribute`.
    pub fn subject(&self, attribute: SubjectAttribute) -> Result<Subject> {
        match attribute {
            SubjectAttribute::UserName => {
                Subject::parse(self.user_name.as_str()).map_err(|e| Error::invalid("userName", e))
            }
            SubjectAttribute::ExternalId => match &self.external_id {
                Some(external) => {
                    Subject::parse(external.as_str()).map_err(|e| Error::invalid("externalId", e))
                }
                None => Err(Error::invalid(
                    "externalId",
                    "is required: the server takes the person's token subject from it \
                     (auth.scim_subject_attribute = externalId)",
                )),
            },
        }
    }
}

/// A SCIM Group's displayName: its role mapping is found by it, regardless
/// of case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupName(DisplayName);

impl GroupName {
    pub fn parse(raw: &str) -> std::result::Result<Self, String> {
        DisplayName::parse(raw).map(Self)
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// The form uniqueness and mappings are decided on.
    pub fn key(&self) -> String {
        self.0.as_str().to_lowercase()
    }
}

/// Everything a SCIM Group write leaves, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupState {
    pub display_name: GroupName,
    pub external_id: Option<ExternalRef>,
    /// The people in the group (their SCIM User ids), without duplicates.
    pub members: Vec<Uuid>,
}

/// The roles a group may be mapped to: INTEGRATION accounts are not
/// provisioned by an identity provider.
pub fn parse_mapped_role(role: Role) -> Result<Role> {
    match role {
        Role::Integration => Err(Error::invalid(
            "role",
            "INTEGRATION is given by an ADMIN, not by a group: map groups to ADMIN, DIRECTOR, MEMBER or VIEWER",
        )),
        other => Ok(other),
    }
}

fn rank(role: Role) -> u8 {
    match role {
        Role::Admin => 4,
        Role::Director => 3,
        Role::Member | Role::Integration => 2,
        Role::Viewer => 1,
    }
}

/// The role of a provisioned person from the roles their groups are mapped
/// to: the highest wins (ADMIN > DIRECTOR > MEMBER > VIEWER); MEMBER when
/// none of their groups is mapped.
pub fn role_from_groups(mapped: impl IntoIterator<Item = Role>) -> Role {
    mapped
        .into_iter()
        .max_by_key(|r| rank(*r))
        .unwrap_or(Role::Member)
}

/// A comparison of a filter (RFC 7644 §3.4.2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    Eq,
    Ne,
    Co,
    Sw,
    Ew,
}

/// A filter over attributes `A`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filter<A> {
    Compare(A, CompareOp, String),
    Present(A),
    And(Box<Filter<A>>, Box<Filter<A>>),
    Or(Box<Filter<A>>, Box<Filter<A>>),
    Not(Box<Filter<A>>),
}

/// The User attributes a filter may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserAttr {
    Id,
    /// Case-insensitive.
    UserName,
    ExternalId,
    /// `emails.value` (and `emails`): the person's e-mail, case-insensitive.
    Email,
    DisplayName,
    Active,
    Title,
    Department,
}

/// The Group attributes a filter may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupAttr {
    Id,
    /// Case-insensitive.
    DisplayName,
    ExternalId,
    /// `members.value` (and `members`): a member's id.
    Member,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_highest_mapped_role_wins_and_member_is_the_default() {
        assert_eq!(role_from_groups([]), Role::Member);
        assert_eq!(role_from_groups([Role::Viewer]), Role::Viewer);
        assert_eq!(
            role_from_groups([Role::Viewer, Role::Director, Role::Member]),
            Role::Director
        );
        assert_eq!(role_from_groups([Role::Director, Role::Admin]), Role::Admin);
    }

    #[test]
    fn integration_is_not_mapped() {
        assert!(parse_mapped_role(Role::Integration).is_err());
        assert_eq!(parse_mapped_role(Role::Director), Ok(Role::Director));
    }

    #[test]
    fn user_names_compare_without_case() {
        let a = UserName::parse("Grace.Hopper@Example.com").unwrap();
        assert_eq!(a.key(), "grace.hopper@example.com");
        assert!(UserName::parse(" padded").is_err());
        assert!(UserName::parse("").is_err());
    }

    #[test]
    fn the_subject_comes_from_the_configured_attribute() {
        let state = UserState {
            user_name: UserName::parse("ghopper").unwrap(),
            external_id: None,
            display_name: DisplayName::parse("Grace Hopper").unwrap(),
            profile_json: "{}".into(),
            email: Email::parse("grace@example.com").unwrap(),
            title: ShortText::parse("").unwrap(),
            department: ShortText::parse("").unwrap(),
            manager_id: None,
            active: true,
        };
        assert_eq!(
            state.subject(SubjectAttribute::UserName).unwrap().as_str(),
            "ghopper"
        );
        let err = state.subject(SubjectAttribute::ExternalId).unwrap_err();
        assert!(err.to_string().contains("externalId"), "{err}");
        let with_external = UserState {
            external_id: Some(ExternalRef::parse("0f8fad5b").unwrap()),
            ..state
        };
        assert_eq!(
            with_external
                .subject(SubjectAttribute::ExternalId)
                .unwrap()
                .as_str(),
            "0f8fad5b"
        );
        assert_eq!(
            "externalId".parse::<SubjectAttribute>(),
            Ok(SubjectAttribute::ExternalId)
        );
        assert!("mail".parse::<SubjectAttribute>().is_err());
    }
}
