//! Who may call what: the authorisation rule of every RPC, in one table.
//!
//! Roles live in the database, per organisation (a person has one role in
//! their organisation). Platform administrators are named by subject in the
//! configuration. An organisation the caller is not an active member of is
//! invisible: the call answers `NOT_FOUND`, exactly as for an id that does not
//! exist. A member whose role is not allowed gets `PERMISSION_DENIED`.

use std::{fmt, str::FromStr};

use crate::{Error, Result};

/// A person's role in their organisation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    Admin,
    Director,
    Member,
    Viewer,
    Integration,
}

impl Role {
    pub const ALL: [Role; 5] = [
        Role::Admin,
        Role::Director,
        Role::Member,
        Role::Viewer,
        Role::Integration,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            Role::Admin => "ADMIN",
            Role::Director => "DIRECTOR",
            Role::Member => "MEMBER",
            Role::Viewer => "VIEWER",
            Role::Integration => "INTEGRATION",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| format!("unknown role '{s}'"))
    }
}

/// Who may perform an action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// Any authenticated caller; what they see is scoped to their memberships.
    Authenticated,
    /// Platform administrators only (configuration, not roles).
    PlatformAdmin,
    /// Active members of the organisation with one of these roles, and
    /// platform administrators.
    RolesOrPlatformAdmin(&'static [Role]),
    /// Active members of the organisation with one of these roles.
    Roles(&'static [Role]),
}

/// Every role: any active member.
pub const ANY_MEMBER: &[Role] = &Role::ALL;

/// An RPC, as the authorisation table knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    CreateOrganisation,
    GetOrganisation,
    ListOrganisations,
    UpdateOrganisation,
    DeleteOrganisation,
    UndeleteOrganisation,
    CreatePerson,
    GetPerson,
    ListPeople,
    UpdatePerson,
    UpdatePersonRole,
    DeactivatePerson,
    ReactivatePerson,
    UpsertPerson,
    CreateProject,
    GetProject,
    ListProjects,
    UpdateProject,
    ResumeProject,
    RetireProject,
    HandOverProjects,
    ListQuestions,
    CreateQuestion,
    RetireQuestion,
    ListAssessmentItems,
    AnswerAssessmentItem,
    GetReadiness,
    RequestGateReview,
    GetGateReview,
    ListGateReviews,
    ListSignatures,
    SignGate,
    WaiveGateCriterion,
    DecideGate,
    ListGateConditions,
    CloseGateCondition,
    ListGatePolicies,
    SetGatePolicy,
    ListAuditEvents,
    VerifyAuditLog,
    WatchEvents,
    CreateKpi,
    GetKpi,
    ListKpis,
    UpdateKpi,
    ArchiveKpi,
    RecordMeasurement,
    ListMeasurements,
    ImportMeasurements,
    GetKpiResult,
    RecordCost,
    ListCosts,
    ImportCosts,
    SetBudget,
    RecordBenefit,
    ListBenefits,
    GetProjectFinancials,
    RecordCosts,
    CorrectCost,
    CreateCostSource,
    ListCostSources,
    ClosePeriod,
    ReopenPeriod,
    ListPeriods,
    SetProjectCostObjects,
    ListCostObjects,
    SetCostCentreRule,
    DeleteCostCentreRule,
    ListCostCentreRules,
    GetPortfolioSummary,
    ListPortfolioProjects,
    ListAlerts,
    ExportPortfolio,
    CreateWebhookEndpoint,
    GetWebhookEndpoint,
    ListWebhookEndpoints,
    UpdateWebhookEndpoint,
    DeleteWebhookEndpoint,
    RotateWebhookSecret,
    ListWebhookDeliveries,
    RedeliverWebhookEvent,
    CreateProvisioningToken,
    ListProvisioningTokens,
    RevokeProvisioningToken,
    SetGroupRoleMapping,
    ListGroupRoleMappings,
    DeleteGroupRoleMapping,
}

/// The table: action, the RPC it guards, the rule, and a note for the README.
pub const RULES: &[(Action, &str, Rule, &str)] = &[
    (
        Action::CreateOrganisation,
        "OrganisationService/CreateOrganisation",
        Rule::PlatformAdmin,
        "platform administrators",
    ),
    (
        Action::GetOrganisation,
        "OrganisationService/GetOrganisation",
        Rule::RolesOrPlatformAdmin(ANY_MEMBER),
        "any active member; platform administrators",
    ),
    (
        Action::ListOrganisations,
        "OrganisationService/ListOrganisations",
        Rule::Authenticated,
        "anyone authenticated: lists the organisations they are an active member of (all, for platform administrators)",
    ),
    (
        Action::UpdateOrganisation,
        "OrganisationService/UpdateOrganisation",
        Rule::RolesOrPlatformAdmin(&[Role::Admin]),
        "ADMIN; platform administrators",
    ),
    (
        Action::DeleteOrganisation,
        "OrganisationService/DeleteOrganisation",
        Rule::PlatformAdmin,
        "platform administrators",
    ),
    (
        Action::UndeleteOrganisation,
        "OrganisationService/UndeleteOrganisation",
        Rule::PlatformAdmin,
        "platform administrators",
    ),
    (
        Action::CreatePerson,
        "PersonService/CreatePerson",
        Rule::Roles(&[Role::Admin, Role::Integration]),
        "ADMIN; INTEGRATION for roles MEMBER and VIEWER only",
    ),
    (
        Action::GetPerson,
        "PersonService/GetPerson",
        Rule::Roles(ANY_MEMBER),
        "any active member",
    ),
    (
        Action::ListPeople,
        "PersonService/ListPeople",
        Rule::Roles(ANY_MEMBER),
        "any active member",
    ),
    (
        Action::UpdatePerson,
        "PersonService/UpdatePerson",
        Rule::Roles(&[Role::Admin, Role::Integration]),
        "ADMIN; INTEGRATION for every field but role",
    ),
    (
        Action::UpdatePersonRole,
        "PersonService/UpdatePerson (role in the mask)",
        Rule::Roles(&[Role::Admin]),
        "ADMIN only",
    ),
    (
        Action::DeactivatePerson,
        "PersonService/DeactivatePerson",
        Rule::Roles(&[Role::Admin, Role::Integration]),
        "ADMIN, INTEGRATION (the HR system)",
    ),
    (
        Action::ReactivatePerson,
        "PersonService/ReactivatePerson",
        Rule::Roles(&[Role::Admin, Role::Integration]),
        "ADMIN, INTEGRATION (the HR system)",
    ),
    (
        Action::UpsertPerson,
        "PersonService/UpsertPerson",
        Rule::Roles(&[Role::Admin, Role::Integration]),
        "ADMIN, INTEGRATION (the HR system: creates MEMBERs and VIEWERs only, never changes a role)",
    ),
    (
        Action::CreateProject,
        "ProjectService/CreateProject",
        Rule::Roles(&[Role::Admin, Role::Director, Role::Member]),
        "ADMIN, DIRECTOR; a MEMBER for a project they lead (the default) or sponsor",
    ),
    (
        Action::GetProject,
        "ProjectService/GetProject",
        Rule::Roles(ANY_MEMBER),
        "any active member; a MEMBER only for the projects they lead or sponsor",
    ),
    (
        Action::ListProjects,
        "ProjectService/ListProjects",
        Rule::Roles(ANY_MEMBER),
        "any active member; a MEMBER sees only the projects they lead or sponsor",
    ),
    (
        Action::UpdateProject,
        "ProjectService/UpdateProject",
        Rule::Roles(&[Role::Admin, Role::Director, Role::Member]),
        "ADMIN, DIRECTOR; a MEMBER only as the project's lead",
    ),
    (
        Action::ResumeProject,
        "ProjectService/ResumeProject",
        Rule::Roles(&[Role::Admin, Role::Director, Role::Member]),
        "a DIRECTOR, or the project's sponsor",
    ),
    (
        Action::RetireProject,
        "ProjectService/RetireProject",
        Rule::Roles(&[Role::Admin, Role::Director, Role::Member]),
        "a DIRECTOR, or the project's sponsor",
    ),
    (
        Action::HandOverProjects,
        "ProjectService/HandOverProjects",
        Rule::Roles(&[Role::Admin, Role::Director]),
        "ADMIN, DIRECTOR",
    ),
    (
        Action::ListQuestions,
        "AssessmentService/ListQuestions",
        Rule::Roles(ANY_MEMBER),
        "any active member",
    ),
    (
        Action::CreateQuestion,
        "AssessmentService/CreateQuestion",
        Rule::Roles(&[Role::Admin, Role::Director]),
        "ADMIN, DIRECTOR",
    ),
    (
        Action::RetireQuestion,
        "AssessmentService/RetireQuestion",
        Rule::Roles(&[Role::Admin, Role::Director]),
        "ADMIN, DIRECTOR",
    ),
    (
        Action::ListAssessmentItems,
        "AssessmentService/ListAssessmentItems",
        Rule::Roles(ANY_MEMBER),
        "whoever sees the project",
    ),
    (
        Action::AnswerAssessmentItem,
        "AssessmentService/AnswerAssessmentItem",
        Rule::Roles(&[Role::Admin, Role::Director, Role::Member]),
        "ADMIN, DIRECTOR; a MEMBER as the project's lead",
    ),
    (
        Action::GetReadiness,
        "AssessmentService/GetReadiness",
        Rule::Roles(ANY_MEMBER),
        "whoever sees the project",
    ),
    (
        Action::RequestGateReview,
        "GateService/RequestGateReview",
        Rule::Roles(&[Role::Admin, Role::Director, Role::Member]),
        "ADMIN, DIRECTOR; a MEMBER as the project's lead or sponsor",
    ),
    (
        Action::GetGateReview,
        "GateService/GetGateReview",
        Rule::Roles(ANY_MEMBER),
        "whoever sees the project",
    ),
    (
        Action::ListGateReviews,
        "GateService/ListGateReviews",
        Rule::Roles(ANY_MEMBER),
        "whoever sees the project",
    ),
    (
        Action::ListSignatures,
        "GateService/ListSignatures",
        Rule::Roles(ANY_MEMBER),
        "any active member; a MEMBER sees the signatures of the projects they lead or sponsor",
    ),
    (
        Action::SignGate,
        "GateService/SignGate",
        Rule::Roles(&[Role::Admin, Role::Director, Role::Member]),
        "a required signatory of the review (never a VIEWER or INTEGRATION account; never the lead as sponsor)",
    ),
    (
        Action::WaiveGateCriterion,
        "GateService/WaiveGateCriterion",
        Rule::Roles(&[Role::Director]),
        "DIRECTOR",
    ),
    (
        Action::DecideGate,
        "GateService/DecideGate",
        Rule::Roles(&[Role::Admin, Role::Director, Role::Member]),
        "a DIRECTOR, or the project's sponsor",
    ),
    (
        Action::ListGateConditions,
        "GateService/ListGateConditions",
        Rule::Roles(ANY_MEMBER),
        "whoever sees the project",
    ),
    (
        Action::CloseGateCondition,
        "GateService/CloseGateCondition",
        Rule::Roles(&[Role::Admin, Role::Director, Role::Member]),
        "ADMIN, DIRECTOR; a MEMBER who owns the condition or leads the project",
    ),
    (
        Action::ListGatePolicies,
        "GateService/ListGatePolicies",
        Rule::Roles(ANY_MEMBER),
        "any active member",
    ),
    (
        Action::SetGatePolicy,
        "GateService/SetGatePolicy",
        Rule::Roles(&[Role::Admin, Role::Director]),
        "ADMIN, DIRECTOR",
    ),
    (
        Action::ListAuditEvents,
        "AuditService/ListAuditEvents",
        Rule::Roles(&[Role::Admin, Role::Director, Role::Viewer]),
        "ADMIN, DIRECTOR, VIEWER",
    ),
    (
        Action::VerifyAuditLog,
        "AuditService/VerifyAuditLog",
        Rule::Roles(&[Role::Admin, Role::Director]),
        "ADMIN, DIRECTOR",
    ),
    (
        Action::WatchEvents,
        "EventService/WatchEvents",
        Rule::Roles(ANY_MEMBER),
        "any active member; a MEMBER sees the events of the projects they lead or sponsor, and the organisation-wide ones",
    ),
    (
        Action::CreateKpi,
        "KpiService/CreateKpi",
        Rule::Roles(&[Role::Admin, Role::Director, Role::Member]),
        "ADMIN, DIRECTOR; a MEMBER as the project's lead",
    ),
    (
        Action::GetKpi,
        "KpiService/GetKpi",
        Rule::Roles(ANY_MEMBER),
        "whoever sees the project",
    ),
    (
        Action::ListKpis,
        "KpiService/ListKpis",
        Rule::Roles(ANY_MEMBER),
        "whoever sees the project",
    ),
    (
        Action::UpdateKpi,
        "KpiService/UpdateKpi",
        Rule::Roles(&[Role::Admin, Role::Director, Role::Member]),
        "ADMIN, DIRECTOR; a MEMBER as the project's lead",
    ),
    (
        Action::ArchiveKpi,
        "KpiService/ArchiveKpi",
        Rule::Roles(&[Role::Admin, Role::Director, Role::Member]),
        "ADMIN, DIRECTOR; a MEMBER as the project's lead",
    ),
    (
        Action::RecordMeasurement,
        "KpiService/RecordMeasurement",
        Rule::Roles(&[Role::Admin, Role::Director, Role::Member, Role::Integration]),
        "ADMIN, DIRECTOR, INTEGRATION; a MEMBER as the project's lead",
    ),
    (
        Action::ListMeasurements,
        "KpiService/ListMeasurements",
        Rule::Roles(ANY_MEMBER),
        "whoever sees the project",
    ),
    (
        Action::ImportMeasurements,
        "KpiService/ImportMeasurements",
        Rule::Roles(&[Role::Admin, Role::Director, Role::Member, Role::Integration]),
        "ADMIN, DIRECTOR, INTEGRATION; a MEMBER for the projects they lead",
    ),
    (
        Action::GetKpiResult,
        "KpiService/GetKpiResult",
        Rule::Roles(ANY_MEMBER),
        "whoever sees the project",
    ),
    (
        Action::RecordCost,
        "FinanceService/RecordCost",
        Rule::Roles(&[Role::Admin, Role::Director, Role::Member, Role::Integration]),
        "ADMIN, DIRECTOR, INTEGRATION; a MEMBER as the project's lead",
    ),
    (
        Action::ListCosts,
        "FinanceService/ListCosts",
        Rule::Roles(ANY_MEMBER),
        "whoever sees the project",
    ),
    (
        Action::ImportCosts,
        "FinanceService/ImportCosts",
        Rule::Roles(&[Role::Admin, Role::Director, Role::Member, Role::Integration]),
        "ADMIN, DIRECTOR, INTEGRATION; a MEMBER for the projects they lead",
    ),
    (
        Action::SetBudget,
        "FinanceService/SetBudget",
        Rule::Roles(&[Role::Admin, Role::Director]),
        "ADMIN, DIRECTOR",
    ),
    (
        Action::RecordBenefit,
        "FinanceService/RecordBenefit",
        Rule::Roles(&[Role::Admin, Role::Director, Role::Member, Role::Integration]),
        "ADMIN, DIRECTOR, INTEGRATION; a MEMBER as the project's lead",
    ),
    (
        Action::ListBenefits,
        "FinanceService/ListBenefits",
        Rule::Roles(ANY_MEMBER),
        "whoever sees the project",
    ),
    (
        Action::GetProjectFinancials,
        "FinanceService/GetProjectFinancials",
        Rule::Roles(ANY_MEMBER),
        "whoever sees the project",
    ),
    (
        Action::RecordCosts,
        "FinanceService/RecordCosts",
        Rule::Roles(&[Role::Admin, Role::Director, Role::Member, Role::Integration]),
        "ADMIN, DIRECTOR, INTEGRATION; a MEMBER for the projects they lead",
    ),
    (
        Action::CorrectCost,
        "FinanceService/CorrectCost",
        Rule::Roles(&[Role::Admin, Role::Director, Role::Member, Role::Integration]),
        "ADMIN, DIRECTOR, INTEGRATION; a MEMBER as the project's lead",
    ),
    (
        Action::CreateCostSource,
        "FinanceService/CreateCostSource",
        Rule::Roles(&[Role::Admin, Role::Director]),
        "ADMIN, DIRECTOR",
    ),
    (
        Action::ListCostSources,
        "FinanceService/ListCostSources",
        Rule::Roles(&[Role::Admin, Role::Director, Role::Integration]),
        "ADMIN, DIRECTOR, INTEGRATION",
    ),
    (
        Action::ClosePeriod,
        "FinanceService/ClosePeriod",
        Rule::Roles(&[Role::Admin, Role::Director, Role::Integration]),
        "ADMIN, DIRECTOR, INTEGRATION (the finance system closes its month)",
    ),
    (
        Action::ReopenPeriod,
        "FinanceService/ReopenPeriod",
        Rule::Roles(&[Role::Admin, Role::Director]),
        "ADMIN, DIRECTOR (never the integration: reopening is a person's decision)",
    ),
    (
        Action::ListPeriods,
        "FinanceService/ListPeriods",
        Rule::Roles(ANY_MEMBER),
        "any active member",
    ),
    (
        Action::SetProjectCostObjects,
        "FinanceService/SetProjectCostObjects",
        Rule::Roles(&[Role::Admin, Role::Director, Role::Integration]),
        "ADMIN, DIRECTOR, INTEGRATION (the ERP's master data)",
    ),
    (
        Action::ListCostObjects,
        "FinanceService/ListCostObjects",
        Rule::Roles(&[Role::Admin, Role::Director, Role::Integration]),
        "ADMIN, DIRECTOR, INTEGRATION",
    ),
    (
        Action::SetCostCentreRule,
        "FinanceService/SetCostCentreRule",
        Rule::Roles(&[Role::Admin, Role::Director]),
        "ADMIN, DIRECTOR",
    ),
    (
        Action::DeleteCostCentreRule,
        "FinanceService/DeleteCostCentreRule",
        Rule::Roles(&[Role::Admin, Role::Director]),
        "ADMIN, DIRECTOR",
    ),
    (
        Action::ListCostCentreRules,
        "FinanceService/ListCostCentreRules",
        Rule::Roles(&[Role::Admin, Role::Director, Role::Integration]),
        "ADMIN, DIRECTOR, INTEGRATION",
    ),
    (
        Action::GetPortfolioSummary,
        "PortfolioService/GetPortfolioSummary",
        Rule::Roles(ANY_MEMBER),
        "any active member; a MEMBER sees the projects they lead or sponsor",
    ),
    (
        Action::ListPortfolioProjects,
        "PortfolioService/ListPortfolioProjects",
        Rule::Roles(ANY_MEMBER),
        "any active member; a MEMBER sees the projects they lead or sponsor",
    ),
    (
        Action::ListAlerts,
        "PortfolioService/ListAlerts",
        Rule::Roles(ANY_MEMBER),
        "any active member; a MEMBER sees the projects they lead or sponsor",
    ),
    (
        Action::ExportPortfolio,
        "PortfolioService/ExportPortfolio",
        Rule::Roles(ANY_MEMBER),
        "any active member; a MEMBER sees the projects they lead or sponsor",
    ),
    (
        Action::CreateWebhookEndpoint,
        "WebhookService/CreateWebhookEndpoint",
        Rule::Roles(&[Role::Admin]),
        "ADMIN",
    ),
    (
        Action::GetWebhookEndpoint,
        "WebhookService/GetWebhookEndpoint",
        Rule::Roles(&[Role::Admin]),
        "ADMIN",
    ),
    (
        Action::ListWebhookEndpoints,
        "WebhookService/ListWebhookEndpoints",
        Rule::Roles(&[Role::Admin]),
        "ADMIN",
    ),
    (
        Action::UpdateWebhookEndpoint,
        "WebhookService/UpdateWebhookEndpoint",
        Rule::Roles(&[Role::Admin]),
        "ADMIN",
    ),
    (
        Action::DeleteWebhookEndpoint,
        "WebhookService/DeleteWebhookEndpoint",
        Rule::Roles(&[Role::Admin]),
        "ADMIN",
    ),
    (
        Action::RotateWebhookSecret,
        "WebhookService/RotateWebhookSecret",
        Rule::Roles(&[Role::Admin]),
        "ADMIN",
    ),
    (
        Action::ListWebhookDeliveries,
        "WebhookService/ListWebhookDeliveries",
        Rule::Roles(&[Role::Admin]),
        "ADMIN",
    ),
    (
        Action::RedeliverWebhookEvent,
        "WebhookService/RedeliverWebhookEvent",
        Rule::Roles(&[Role::Admin]),
        "ADMIN",
    ),
    (
        Action::CreateProvisioningToken,
        "ProvisioningService/CreateProvisioningToken",
        Rule::Roles(&[Role::Admin]),
        "ADMIN",
    ),
    (
        Action::ListProvisioningTokens,
        "ProvisioningService/ListProvisioningTokens",
        Rule::Roles(&[Role::Admin]),
        "ADMIN",
    ),
    (
        Action::RevokeProvisioningToken,
        "ProvisioningService/RevokeProvisioningToken",
        Rule::Roles(&[Role::Admin]),
        "ADMIN",
    ),
    (
        Action::SetGroupRoleMapping,
        "ProvisioningService/SetGroupRoleMapping",
        Rule::Roles(&[Role::Admin]),
        "ADMIN",
    ),
    (
        Action::ListGroupRoleMappings,
        "ProvisioningService/ListGroupRoleMappings",
        Rule::Roles(&[Role::Admin]),
        "ADMIN",
    ),
    (
        Action::DeleteGroupRoleMapping,
        "ProvisioningService/DeleteGroupRoleMapping",
        Rule::Roles(&[Role::Admin]),
        "ADMIN",
    ),
];

/// The rule of an action.
pub fn rule(action: Action) -> Rule {
    RULES
        .iter()
        .find(|(a, ..)| *a == action)
        .map_or(Rule::PlatformAdmin, |(_, _, rule, _)| *rule)
}

/// What is known of the caller with respect to one organisation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Standing {
    /// Named as a platform administrator by the configuration.
    pub platform_admin: bool,
    /// Their role, when they are an active member of the organisation.
    pub role: Option<Role>,
}

/// Decides whether a caller of the given standing may perform `action` on a
/// resource of an organisation. `resource` names what answers `NOT_FOUND`
/// when the organisation is invisible to the caller.
pub fn authorize(action: Action, standing: Standing, resource: &'static str) -> Result<()> {
    let denied = |role: Role| {
        Err(Error::PermissionDenied(format!(
            "the role {role} may not perform {action:?}"
        )))
    };
    match (rule(action), standing.role) {
        (Rule::Authenticated, _) => Ok(()),
        (Rule::PlatformAdmin, _) if standing.platform_admin => Ok(()),
        (Rule::RolesOrPlatformAdmin(_), _) if standing.platform_admin => Ok(()),
        (Rule::RolesOrPlatformAdmin(roles) | Rule::Roles(roles), Some(role)) => {
            if roles.contains(&role) {
                Ok(())
            } else {
                denied(role)
            }
        }
        (Rule::PlatformAdmin, Some(role)) => denied(role),
        (_, None) => Err(Error::NotFound { resource }),
    }
}

/// A member of an organisation as the access policy sees them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Member {
    pub person_id: uuid::Uuid,
    pub role: Role,
}

/// The people a project relates to, for the MEMBER rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Parties {
    pub lead: Option<uuid::Uuid>,
    pub sponsor: Option<uuid::Uuid>,
    /// The owner of the gate condition acted on, if any.
    pub condition_owner: Option<uuid::Uuid>,
    /// The member is a required signatory of the gate review acted on.
    pub signatory: bool,
}

impl Parties {
    /// The lead and sponsor of a project (no condition, not a signatory).
    pub fn of(project: &crate::project::Project) -> Parties {
        Parties {
            lead: project.details.lead_id,
            sponsor: project.details.sponsor_id,
            ..Parties::default()
        }
    }
}

/// What a MEMBER must be to a project to act on it. Other roles that the
/// table [`RULES`] lets in act on every project of their organisation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Relationship {
    /// Sees it: leads or sponsors it.
    Sees,
    /// Leads it.
    Lead,
    /// Leads or sponsors it.
    LeadOrSponsor,
    /// Owns the condition acted on, or leads the project.
    ConditionOwnerOrLead,
    /// Sponsors it.
    Sponsor,
}

/// The roles the relationship binds, besides MEMBER-only rules.
const MEMBER: &[Role] = &[Role::Member];

/// The relationship rule of each action on a project: the relationship,
/// the roles it binds (MEMBER, mostly), and what a refused caller is told;
/// actions not listed ask a MEMBER to see the project.
pub const RELATIONSHIPS: &[(Action, Relationship, &[Role], &str)] = &[
    (
        Action::CreateProject,
        Relationship::LeadOrSponsor,
        MEMBER,
        "a MEMBER creates projects they lead or sponsor",
    ),
    (
        Action::UpdateProject,
        Relationship::Lead,
        MEMBER,
        "only the project's lead, a DIRECTOR or an ADMIN updates it",
    ),
    (
        Action::AnswerAssessmentItem,
        Relationship::Lead,
        MEMBER,
        "the project's lead, a DIRECTOR or an ADMIN answers its assessment",
    ),
    (
        Action::RequestGateReview,
        Relationship::LeadOrSponsor,
        MEMBER,
        "the project's lead or sponsor, a DIRECTOR or an ADMIN requests its gate review",
    ),
    (
        Action::CloseGateCondition,
        Relationship::ConditionOwnerOrLead,
        MEMBER,
        "the condition's owner, the project's lead, a DIRECTOR or an ADMIN closes it",
    ),
    (
        Action::CreateKpi,
        Relationship::Lead,
        MEMBER,
        "the project's lead, a DIRECTOR or an ADMIN manages its KPIs",
    ),
    (
        Action::UpdateKpi,
        Relationship::Lead,
        MEMBER,
        "the project's lead, a DIRECTOR or an ADMIN manages its KPIs",
    ),
    (
        Action::ArchiveKpi,
        Relationship::Lead,
        MEMBER,
        "the project's lead, a DIRECTOR or an ADMIN manages its KPIs",
    ),
    (
        Action::RecordMeasurement,
        Relationship::Lead,
        MEMBER,
        "the project's lead, a DIRECTOR, an ADMIN or an INTEGRATION account records its measurements",
    ),
    (
        Action::ImportMeasurements,
        Relationship::Lead,
        MEMBER,
        "the project's lead, a DIRECTOR, an ADMIN or an INTEGRATION account records its measurements",
    ),
    (
        Action::RecordCost,
        Relationship::Lead,
        MEMBER,
        "the project's lead, a DIRECTOR, an ADMIN or the finance integration posts its money",
    ),
    (
        Action::ImportCosts,
        Relationship::Lead,
        MEMBER,
        "the project's lead, a DIRECTOR, an ADMIN or the finance integration posts its money",
    ),
    (
        Action::RecordCosts,
        Relationship::Lead,
        MEMBER,
        "the project's lead, a DIRECTOR, an ADMIN or the finance integration posts its money",
    ),
    (
        Action::CorrectCost,
        Relationship::Lead,
        MEMBER,
        "the project's lead, a DIRECTOR, an ADMIN or the finance integration posts its money",
    ),
    (
        Action::SetBudget,
        Relationship::Lead,
        MEMBER,
        "the project's lead, a DIRECTOR, an ADMIN or the finance integration posts its money",
    ),
    (
        Action::RecordBenefit,
        Relationship::Lead,
        MEMBER,
        "the project's lead, a DIRECTOR, an ADMIN or the finance integration posts its money",
    ),
    (
        Action::ResumeProject,
        Relationship::Sponsor,
        &[Role::Admin, Role::Member],
        "a DIRECTOR or the project's sponsor resumes or retires it",
    ),
    (
        Action::RetireProject,
        Relationship::Sponsor,
        &[Role::Admin, Role::Member],
        "a DIRECTOR or the project's sponsor resumes or retires it",
    ),
];

/// The relationship rule of an action on a project.
pub fn relationship(action: Action) -> (Relationship, &'static [Role], &'static str) {
    RELATIONSHIPS
        .iter()
        .find(|(a, _, _, _)| *a == action)
        .map_or(
            (
                Relationship::Sees,
                MEMBER,
                "a MEMBER acts on the projects they lead or sponsor",
            ),
            |(_, r, roles, why)| (*r, *roles, *why),
        )
}

/// Whether a member sees a project: every role but MEMBER sees every
/// project of the organisation; a MEMBER those they lead or sponsor, and
/// through a condition they own or a review they must sign, that condition
/// or review.
pub fn sees(member: &Member, parties: &Parties) -> bool {
    member.role != Role::Member
        || parties.signatory
        || [parties.lead, parties.sponsor, parties.condition_owner]
            .contains(&Some(member.person_id))
}

/// The one access policy on a project: an invisible project answers
/// NOT_FOUND (as an absent one, named `resource`); a caller whose role the
/// action's relationship binds (MEMBER, mostly) and who lacks it is refused
/// with what it takes.
pub fn check(
    member: &Member,
    action: Action,
    parties: &Parties,
    resource: &'static str,
) -> Result<()> {
    // A project being created hides nothing yet.
    if action != Action::CreateProject && !sees(member, parties) {
        return Err(Error::NotFound { resource });
    }
    let (rule, bound, why) = relationship(action);
    if !bound.contains(&member.role) {
        return Ok(());
    }
    let me = Some(member.person_id);
    let holds = match rule {
        Relationship::Sees => true,
        Relationship::Lead => parties.lead == me,
        Relationship::LeadOrSponsor => parties.lead == me || parties.sponsor == me,
        Relationship::ConditionOwnerOrLead => parties.condition_owner == me || parties.lead == me,
        Relationship::Sponsor => parties.sponsor == me,
    };
    if holds {
        Ok(())
    } else {
        Err(Error::PermissionDenied(why.to_owned()))
    }
}

/// Whether a member may give `role` to a person they create: an
/// INTEGRATION account (an HR system) only the roles of
/// [`crate::person::ROLES_AN_INTEGRATION_MAY_GRANT`].
pub fn may_grant(member: &Member, role: Role) -> Result<()> {
    if member.role == Role::Integration
        && !crate::person::ROLES_AN_INTEGRATION_MAY_GRANT.contains(&role)
    {
        return Err(Error::PermissionDenied(format!(
            "an INTEGRATION account may only create people with the roles MEMBER or VIEWER, not {role}"
        )));
    }
    Ok(())
}

/// A MEMBER who proposes a project and names no lead leads it (other
/// roles propose for others).
pub fn proposer_leads(member: &Member, details: &mut crate::project::ProjectDetails) {
    if member.role == Role::Member && details.lead_id.is_none() {
        details.lead_id = Some(member.person_id);
    }
}

/// Which projects a member's lists and roll-ups cover: the predicate every
/// list turns into SQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Visibility {
    #[default]
    All,
    LeadOrSponsor(uuid::Uuid),
}

/// The [`Visibility`] of a member.
pub fn visibility(member: &Member) -> Visibility {
    if member.role == Role::Member {
        Visibility::LeadOrSponsor(member.person_id)
    } else {
        Visibility::All
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MEMBER: Standing = Standing {
        platform_admin: false,
        role: Some(Role::Member),
    };
    const ADMIN: Standing = Standing {
        platform_admin: false,
        role: Some(Role::Admin),
    };
    const STRANGER: Standing = Standing {
        platform_admin: false,
        role: None,
    };
    const PLATFORM: Standing = Standing {
        platform_admin: true,
        role: None,
    };

    #[test]
    fn every_action_has_exactly_one_rule() {
        for (action, ..) in RULES {
            assert_eq!(
                RULES.iter().filter(|(a, ..)| a == action).count(),
                1,
                "{action:?}"
            );
        }
    }

    #[test]
    fn strangers_get_not_found() {
        for (action, ..) in RULES {
            if rule(*action) == Rule::Authenticated || rule(*action) == Rule::PlatformAdmin {
                continue;
            }
            assert_eq!(
                authorize(*action, STRANGER, "organisation"),
                Err(Error::NotFound {
                    resource: "organisation"
                }),
                "{action:?}"
            );
        }
    }

    #[test]
    fn members_read_but_do_not_manage() {
        assert!(authorize(Action::GetPerson, MEMBER, "person").is_ok());
        assert!(authorize(Action::ListPeople, MEMBER, "person").is_ok());
        assert!(matches!(
            authorize(Action::CreatePerson, MEMBER, "person"),
            Err(Error::PermissionDenied(_))
        ));
        assert!(matches!(
            authorize(Action::UpdateOrganisation, MEMBER, "organisation"),
            Err(Error::PermissionDenied(_))
        ));
        assert!(matches!(
            authorize(Action::CreateOrganisation, MEMBER, "organisation"),
            Err(Error::PermissionDenied(_))
        ));
    }

    #[test]
    fn admins_manage_their_organisation_but_do_not_create_others() {
        assert!(authorize(Action::UpdatePersonRole, ADMIN, "person").is_ok());
        assert!(authorize(Action::UpdateOrganisation, ADMIN, "organisation").is_ok());
        assert!(authorize(Action::CreateOrganisation, ADMIN, "organisation").is_err());
        assert!(authorize(Action::DeleteOrganisation, ADMIN, "organisation").is_err());
    }

    #[test]
    fn platform_admins_manage_organisations_not_people() {
        assert!(authorize(Action::CreateOrganisation, PLATFORM, "organisation").is_ok());
        assert!(authorize(Action::UpdateOrganisation, PLATFORM, "organisation").is_ok());
        assert!(authorize(Action::DeleteOrganisation, PLATFORM, "organisation").is_ok());
        assert_eq!(
            authorize(Action::ListPeople, PLATFORM, "organisation"),
            Err(Error::NotFound {
                resource: "organisation"
            })
        );
    }

    #[test]
    fn integration_accounts_cannot_change_roles() {
        let integration = Standing {
            platform_admin: false,
            role: Some(Role::Integration),
        };
        assert!(authorize(Action::UpdatePerson, integration, "person").is_ok());
        assert!(authorize(Action::DeactivatePerson, integration, "person").is_ok());
        assert!(authorize(Action::UpdatePersonRole, integration, "person").is_err());
    }

    #[test]
    fn roles_round_trip() {
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>(), Ok(role));
        }
        assert!("OWNER".parse::<Role>().is_err());
    }

    #[test]
    fn the_relationship_policy_binds_members_and_hides_what_they_do_not_see() {
        let (lead, sponsor, other) = (
            uuid::Uuid::from_u128(1),
            uuid::Uuid::from_u128(2),
            uuid::Uuid::from_u128(3),
        );
        let p = Parties {
            lead: Some(lead),
            sponsor: Some(sponsor),
            ..Default::default()
        };
        let m = |person_id, role| Member { person_id, role };
        // The lead posts money; the sponsor sees but may not; a stranger
        // member does not even see the project.
        assert_eq!(
            check(&m(lead, Role::Member), Action::RecordCost, &p, "project"),
            Ok(())
        );
        assert!(matches!(
            check(&m(sponsor, Role::Member), Action::RecordCost, &p, "project"),
            Err(Error::PermissionDenied(_))
        ));
        assert_eq!(
            check(&m(other, Role::Member), Action::RecordCost, &p, "project"),
            Err(Error::NotFound {
                resource: "project"
            })
        );
        // Other roles act on every project.
        assert_eq!(
            check(
                &m(other, Role::Integration),
                Action::RecordCost,
                &p,
                "project"
            ),
            Ok(())
        );
        // The sponsor requests a gate review; a condition's owner closes it.
        assert_eq!(
            check(
                &m(sponsor, Role::Member),
                Action::RequestGateReview,
                &p,
                "project"
            ),
            Ok(())
        );
        let owned = Parties {
            condition_owner: Some(other),
            ..p
        };
        assert_eq!(
            check(
                &m(other, Role::Member),
                Action::CloseGateCondition,
                &owned,
                "condition"
            ),
            Ok(())
        );
        // Resuming binds ADMIN too: a DIRECTOR or the sponsor.
        assert!(check(&m(other, Role::Admin), Action::ResumeProject, &p, "project").is_err());
        assert_eq!(
            check(
                &m(other, Role::Director),
                Action::ResumeProject,
                &p,
                "project"
            ),
            Ok(())
        );
        assert_eq!(
            check(
                &m(sponsor, Role::Admin),
                Action::ResumeProject,
                &p,
                "project"
            ),
            Ok(())
        );
        // A required signatory sees the review without leading or sponsoring.
        let signing = Parties {
            signatory: true,
            ..p
        };
        assert_eq!(
            check(
                &m(other, Role::Member),
                Action::GetGateReview,
                &signing,
                "gate review"
            ),
            Ok(())
        );
        // A member creates only projects they lead or sponsor, and is told so.
        let theirs = Parties {
            lead: Some(other),
            ..Default::default()
        };
        assert_eq!(
            check(
                &m(other, Role::Member),
                Action::CreateProject,
                &theirs,
                "project"
            ),
            Ok(())
        );
        assert!(matches!(
            check(
                &m(other, Role::Member),
                Action::CreateProject,
                &Parties::default(),
                "project"
            ),
            Err(Error::PermissionDenied(_))
        ));
        assert_eq!(
            visibility(&m(other, Role::Member)),
            Visibility::LeadOrSponsor(other)
        );
        assert_eq!(visibility(&m(other, Role::Viewer)), Visibility::All);
    }
}
