//! The default question bank: the checklist Jalon instantiates, per phase and
//! per concern, when a project enters a phase.
//!
//! The material comes from the field study of about fifteen enterprise AI
//! projects in the white paper "Du POC à l'industrialisation de l'IA" (Cité de
//! l'IA, working group "Industrialisation"): four phases, six concerns at each
//! phase, and what the projects that reached production did (figures quoted
//! in the texts are the study's). The EU AI Act items map the paper's
//! "ethical avoidance" onto today's risk tiers.
//!
//! Every phase/concern pair has at least one `MUST` item (a knock-out
//! criterion of the gate, weight 1) and several `SHOULD` items weighted 1 to 5
//! into readiness. Keys are `<phase>.<concern>.<slug>`, unique and stable:
//! answers and organisations' retirements refer to them, and the gate engine
//! looks some of them up by name (see [`crate::assessment::keys`]). Never
//! rename or reuse a key; retire it and add a new one.

use crate::{
    assessment::{BankQuestion, Concern, QuestionKind},
    project::Phase,
};

/// The default question bank shipped with Jalon, ordered by phase, then
/// concern.
pub const DEFAULT_BANK: &[BankQuestion] = &[
    // IDEATION
    BankQuestion {
        key: "ideation.data.sources-identified",
        phase: Phase::Ideation,
        concern: Concern::Data,
        kind: QuestionKind::Must,
        weight: 1,
        text: "Data sources identified with the business domain experts, including sources outside the information systems",
    },
    BankQuestion {
        key: "ideation.data.content-explored",
        phase: Phase::Ideation,
        concern: Concern::Data,
        kind: QuestionKind::Should,
        weight: 4,
        text: "Content of the identified data explored: quantity, quality and how it is made available (data lake, file drops, ad-hoc extracts, APIs)",
    },
    BankQuestion {
        key: "ideation.data.personal-data-reviewed",
        phase: Phase::Ideation,
        concern: Concern::Data,
        kind: QuestionKind::Should,
        weight: 5,
        text: "Data sensitivity reviewed: personal data identified for confidentiality and, where needed, declared to the security officer (RSSI)",
    },
    BankQuestion {
        key: "ideation.data.labelling-need-estimated",
        phase: Phase::Ideation,
        concern: Concern::Data,
        kind: QuestionKind::Should,
        weight: 4,
        text: "Labelling need and effort estimated, including the business experts it requires (half of the studied cases needed labelling)",
    },
    BankQuestion {
        key: "ideation.data.access-checked",
        phase: Phase::Ideation,
        concern: Concern::Data,
        kind: QuestionKind::Should,
        weight: 4,
        text: "Access to the data checked with its owners (57% of the studied cases hit data-access problems)",
    },
    BankQuestion {
        key: "ideation.algorithm.result-type-defined",
        phase: Phase::Ideation,
        concern: Concern::Algorithm,
        kind: QuestionKind::Must,
        weight: 1,
        text: "Kind of result sought defined: prediction, classification, clustering, visual recognition, language processing, generation or recommendation",
    },
    BankQuestion {
        key: "ideation.algorithm.approach-considered",
        phase: Phase::Ideation,
        concern: Concern::Algorithm,
        kind: QuestionKind::Should,
        weight: 3,
        text: "Algorithm approach considered: off-the-shelf service, transfer learning of an existing model, or a specific model (which needs much annotated data)",
    },
    BankQuestion {
        key: "ideation.algorithm.team-multidisciplinary",
        phase: Phase::Ideation,
        concern: Concern::Algorithm,
        kind: QuestionKind::Should,
        weight: 4,
        text: "Multidisciplinary team planned: business experts, data scientists, data and cloud engineers, and IT skills for interfaces and API exposure",
    },
    BankQuestion {
        key: "ideation.algorithm.outside-expertise-assessed",
        phase: Phase::Ideation,
        concern: Concern::Algorithm,
        kind: QuestionKind::Should,
        weight: 3,
        text: "Need for outside expertise assessed (30% of the studied cases had to call on it)",
    },
    BankQuestion {
        key: "ideation.expected-result.objective-clear",
        phase: Phase::Ideation,
        concern: Concern::ExpectedResult,
        kind: QuestionKind::Must,
        weight: 1,
        text: "Objective stated clearly in business terms and agreed with the sponsor",
    },
    BankQuestion {
        key: "ideation.expected-result.gain-quantified",
        phase: Phase::Ideation,
        concern: Concern::ExpectedResult,
        kind: QuestionKind::Should,
        weight: 5,
        text: "Expected gain estimated and quantified (only 1 studied case in 5 had a clear, quantified estimate)",
    },
    BankQuestion {
        key: "ideation.expected-result.indicators-defined",
        phase: Phase::Ideation,
        concern: Concern::ExpectedResult,
        kind: QuestionKind::Should,
        weight: 5,
        text: "Success indicators defined, each with a direction (higher or lower is better), a unit and a target",
    },
    BankQuestion {
        key: "ideation.expected-result.baseline-planned",
        phase: Phase::Ideation,
        concern: Concern::ExpectedResult,
        kind: QuestionKind::Should,
        weight: 4,
        text: "Measurement of the success indicators before the project starts (baseline) planned, with the data and the owner it needs",
    },
    BankQuestion {
        key: "ideation.change-management.sponsor-identified",
        phase: Phase::Ideation,
        concern: Concern::ChangeManagement,
        kind: QuestionKind::Must,
        weight: 1,
        text: "Sponsor identified (business or finance direction), named and committed to the project",
    },
    BankQuestion {
        key: "ideation.change-management.objectives-with-business",
        phase: Phase::Ideation,
        concern: Concern::ChangeManagement,
        kind: QuestionKind::Should,
        weight: 4,
        text: "Objectives defined with the business teams that will use the result",
    },
    BankQuestion {
        key: "ideation.change-management.affected-teams-identified",
        phase: Phase::Ideation,
        concern: Concern::ChangeManagement,
        kind: QuestionKind::Should,
        weight: 3,
        text: "Teams and roles affected identified, and the change to their work practices anticipated",
    },
    BankQuestion {
        key: "ideation.change-management.it-teams-involved",
        phase: Phase::Ideation,
        concern: Concern::ChangeManagement,
        kind: QuestionKind::Should,
        weight: 3,
        text: "IT teams involved from the launch (they had more adoption difficulties than business teams in the study)",
    },
    BankQuestion {
        key: "ideation.technical-integration.impact-analysed",
        phase: Phase::Ideation,
        concern: Concern::TechnicalIntegration,
        kind: QuestionKind::Must,
        weight: 1,
        text: "Integration impact analysed at the start: information-system architecture, skills to hire, infrastructure and run costs (57% of the studied cases did)",
    },
    BankQuestion {
        key: "ideation.technical-integration.industrialisation-anticipated",
        phase: Phase::Ideation,
        concern: Concern::TechnicalIntegration,
        kind: QuestionKind::Should,
        weight: 4,
        text: "Industrialisation anticipated from the start: target execution environment chosen and the effort it implies estimated",
    },
    BankQuestion {
        key: "ideation.technical-integration.existing-systems-identified",
        phase: Phase::Ideation,
        concern: Concern::TechnicalIntegration,
        kind: QuestionKind::Should,
        weight: 4,
        text: "Existing systems that may have to be modified identified (1 studied case in 2 had to, which slowed 1 in 3)",
    },
    BankQuestion {
        key: "ideation.technical-integration.capture-channel-identified",
        phase: Phase::Ideation,
        concern: Concern::TechnicalIntegration,
        kind: QuestionKind::Should,
        weight: 3,
        text: "Capture channel identified and its integration constraints understood (a web chatbot is not a phone callbot)",
    },
    BankQuestion {
        key: "ideation.ethics.prohibited-uses-excluded",
        phase: Phase::Ideation,
        concern: Concern::Ethics,
        kind: QuestionKind::Must,
        weight: 1,
        text: "Prohibited and unethical uses excluded (ethical avoidance): no EU AI Act prohibited practice, such as emotion recognition at work",
    },
    BankQuestion {
        key: "ideation.ethics.ai-act-tier-assessed",
        phase: Phase::Ideation,
        concern: Concern::Ethics,
        kind: QuestionKind::Should,
        weight: 5,
        text: "EU AI Act risk tier assessed (prohibited, high, limited, minimal) and the reason recorded",
    },
    BankQuestion {
        key: "ideation.ethics.bias-risks-identified",
        phase: Phase::Ideation,
        concern: Concern::Ethics,
        kind: QuestionKind::Should,
        weight: 4,
        text: "Bias and discrimination risks of the use case identified (recruitment-like uses are high risk and need bias audits)",
    },
    BankQuestion {
        key: "ideation.ethics.personal-data-minimised",
        phase: Phase::Ideation,
        concern: Concern::Ethics,
        kind: QuestionKind::Should,
        weight: 3,
        text: "Use of personal data justified by the objective and limited to what it needs",
    },
    BankQuestion {
        key: "ideation.ethics.framework-referenced",
        phase: Phase::Ideation,
        concern: Concern::Ethics,
        kind: QuestionKind::Should,
        weight: 3,
        text: "A public AI ethics framework referenced (for example Syntec's or Stanford HAI's)",
    },
    // POC
    BankQuestion {
        key: "poc.data.access-secured",
        phase: Phase::Poc,
        concern: Concern::Data,
        kind: QuestionKind::Must,
        weight: 1,
        text: "Access to the data needed for the POC secured with its owners (57% of the studied cases hit data-access problems)",
    },
    BankQuestion {
        key: "poc.data.personal-data-declared",
        phase: Phase::Poc,
        concern: Concern::Data,
        kind: QuestionKind::Should,
        weight: 4,
        text: "Personal data used in the POC declared to the security officer (RSSI) where required",
    },
    BankQuestion {
        key: "poc.data.quality-assessed",
        phase: Phase::Poc,
        concern: Concern::Data,
        kind: QuestionKind::Should,
        weight: 5,
        text: "Data analysed for significance, quantity, balance and bias: enough to train a reliable model (rare positive cases, as in fraud, may need rebalancing)",
    },
    BankQuestion {
        key: "poc.data.production-data-used",
        phase: Phase::Poc,
        concern: Concern::Data,
        kind: QuestionKind::Should,
        weight: 5,
        text: "Training data taken from production, not reworked data, so that the model does not distort after go-live",
    },
    BankQuestion {
        key: "poc.data.labelling-tracked",
        phase: Phase::Poc,
        concern: Concern::Data,
        kind: QuestionKind::Should,
        weight: 3,
        text: "Labelling done with the business experts and its effort tracked (data preparation is at least 60% of the work, labelling the longest)",
    },
    BankQuestion {
        key: "poc.algorithm.target-accuracy-fixed",
        phase: Phase::Poc,
        concern: Concern::Algorithm,
        kind: QuestionKind::Must,
        weight: 1,
        text: "Target accuracy and validation process fixed before tuning starts (tuning took 10% to 60% of project time in the studied cases)",
    },
    BankQuestion {
        key: "poc.algorithm.candidates-compared",
        phase: Phase::Poc,
        concern: Concern::Algorithm,
        kind: QuestionKind::Should,
        weight: 3,
        text: "Candidate algorithms tested against explicit criteria: ease of implementation, processing time, compute power needed",
    },
    BankQuestion {
        key: "poc.algorithm.tuning-time-boxed",
        phase: Phase::Poc,
        concern: Concern::Algorithm,
        kind: QuestionKind::Should,
        weight: 4,
        text: "Tuning time boxed and tracked against the plan",
    },
    BankQuestion {
        key: "poc.algorithm.results-validated",
        phase: Phase::Poc,
        concern: Concern::Algorithm,
        kind: QuestionKind::Should,
        weight: 4,
        text: "Results validated with the business experts on data not used for training",
    },
    BankQuestion {
        key: "poc.expected-result.baseline-measured",
        phase: Phase::Poc,
        concern: Concern::ExpectedResult,
        kind: QuestionKind::Must,
        weight: 1,
        text: "Success indicators measured before the project starts (baseline), so that the gain can be computed after",
    },
    BankQuestion {
        key: "poc.expected-result.accuracy-reached",
        phase: Phase::Poc,
        concern: Concern::ExpectedResult,
        kind: QuestionKind::Should,
        weight: 5,
        text: "POC reached the target accuracy (POCs in the study quickly reached 70% to 80%)",
    },
    BankQuestion {
        key: "poc.expected-result.objective-confirmed",
        phase: Phase::Poc,
        concern: Concern::ExpectedResult,
        kind: QuestionKind::Should,
        weight: 4,
        text: "Objective confirmed, or deliberately revised and agreed, in the light of the POC (it mutated in 1 studied case in 3)",
    },
    BankQuestion {
        key: "poc.expected-result.gain-revised",
        phase: Phase::Poc,
        concern: Concern::ExpectedResult,
        kind: QuestionKind::Should,
        weight: 4,
        text: "Gain estimate revised and quantified with the POC results",
    },
    BankQuestion {
        key: "poc.expected-result.measurement-designed",
        phase: Phase::Poc,
        concern: Concern::ExpectedResult,
        kind: QuestionKind::Should,
        weight: 4,
        text: "Way to measure the result in operation designed (half of the studied cases had to build one)",
    },
    BankQuestion {
        key: "poc.change-management.sponsor-engaged",
        phase: Phase::Poc,
        concern: Concern::ChangeManagement,
        kind: QuestionKind::Must,
        weight: 1,
        text: "Sponsor reviewed the POC results and is engaged for the pilot",
    },
    BankQuestion {
        key: "poc.change-management.business-involved",
        phase: Phase::Poc,
        concern: Concern::ChangeManagement,
        kind: QuestionKind::Should,
        weight: 3,
        text: "Business teams involved in the POC to surface impacts not foreseen at launch (found in 1 studied case in 2)",
    },
    BankQuestion {
        key: "poc.change-management.explainability-assessed",
        phase: Phase::Poc,
        concern: Concern::ChangeManagement,
        kind: QuestionKind::Should,
        weight: 4,
        text: "Explainability of the results assessed with future users (over half of the studied cases had difficulties)",
    },
    BankQuestion {
        key: "poc.change-management.communication-plan-drafted",
        phase: Phase::Poc,
        concern: Concern::ChangeManagement,
        kind: QuestionKind::Should,
        weight: 3,
        text: "Communication plan drafted (under half of the studied cases had one)",
    },
    BankQuestion {
        key: "poc.technical-integration.integration-path-validated",
        phase: Phase::Poc,
        concern: Concern::TechnicalIntegration,
        kind: QuestionKind::Must,
        weight: 1,
        text: "Integration path into the target systems validated with the IT teams: interfaces, data flows, hosting",
    },
    BankQuestion {
        key: "poc.technical-integration.poc-integrated",
        phase: Phase::Poc,
        concern: Concern::TechnicalIntegration,
        kind: QuestionKind::Should,
        weight: 5,
        text: "POC integrated or semi-integrated with the target systems rather than isolated (such POCs reach deployment more often)",
    },
    BankQuestion {
        key: "poc.technical-integration.system-changes-planned",
        phase: Phase::Poc,
        concern: Concern::TechnicalIntegration,
        kind: QuestionKind::Should,
        weight: 4,
        text: "Changes to existing systems listed with owners and resource availability (they slowed 1 studied case in 3)",
    },
    BankQuestion {
        key: "poc.technical-integration.flows-defined",
        phase: Phase::Poc,
        concern: Concern::TechnicalIntegration,
        kind: QuestionKind::Should,
        weight: 3,
        text: "Data flows defined: APIs for real-time channels such as audio, video or conversation, batch processing elsewhere",
    },
    BankQuestion {
        key: "poc.ethics.personal-data-anonymised",
        phase: Phase::Poc,
        concern: Concern::Ethics,
        kind: QuestionKind::Must,
        weight: 1,
        text: "Personal data anonymised or pseudonymised before it is used",
    },
    BankQuestion {
        key: "poc.ethics.bias-assessed",
        phase: Phase::Poc,
        concern: Concern::Ethics,
        kind: QuestionKind::Should,
        weight: 5,
        text: "Bias assessed on the POC data and results (seen in 20% of the studied cases, always from the narrow POC context)",
    },
    BankQuestion {
        key: "poc.ethics.high-risk-audit-planned",
        phase: Phase::Poc,
        concern: Concern::Ethics,
        kind: QuestionKind::Should,
        weight: 4,
        text: "For high-risk uses such as recruitment, a bias and discrimination audit planned, for example scoring against public matrices",
    },
    BankQuestion {
        key: "poc.ethics.ai-act-tier-confirmed",
        phase: Phase::Poc,
        concern: Concern::Ethics,
        kind: QuestionKind::Should,
        weight: 4,
        text: "EU AI Act risk tier confirmed in the light of the POC",
    },
    BankQuestion {
        key: "poc.ethics.framework-applied",
        phase: Phase::Poc,
        concern: Concern::Ethics,
        kind: QuestionKind::Should,
        weight: 2,
        text: "Principles of the referenced ethics framework checked against the POC",
    },
    // INDUSTRIALISATION
    BankQuestion {
        key: "industrialisation.data.pipelines-industrialised",
        phase: Phase::Industrialisation,
        concern: Concern::Data,
        kind: QuestionKind::Must,
        weight: 1,
        text: "Data feeding, transport and storage industrialised, replacing file drops and ad-hoc extracts (70% of the studied cases had to build them)",
    },
    BankQuestion {
        key: "industrialisation.data.production-data-training",
        phase: Phase::Industrialisation,
        concern: Concern::Data,
        kind: QuestionKind::Should,
        weight: 5,
        text: "Model trained or validated on production data, not reworked data",
    },
    BankQuestion {
        key: "industrialisation.data.access-secured",
        phase: Phase::Industrialisation,
        concern: Concern::Data,
        kind: QuestionKind::Should,
        weight: 4,
        text: "Production access to the data secured: service accounts, rights and security reviewed",
    },
    BankQuestion {
        key: "industrialisation.data.dataops",
        phase: Phase::Industrialisation,
        concern: Concern::Data,
        kind: QuestionKind::Should,
        weight: 2,
        text: "Data experts and automation experts work together on the pipelines (DataOps)",
    },
    BankQuestion {
        key: "industrialisation.algorithm.retraining-plan",
        phase: Phase::Industrialisation,
        concern: Concern::Algorithm,
        kind: QuestionKind::Must,
        weight: 1,
        text: "Retraining plan defined: when, how and on which data the model is retrained (1 studied case in 3 was retrained after go-live)",
    },
    BankQuestion {
        key: "industrialisation.algorithm.relevance-monitoring-designed",
        phase: Phase::Industrialisation,
        concern: Concern::Algorithm,
        kind: QuestionKind::Should,
        weight: 4,
        text: "Relevance monitoring designed: metrics, thresholds and alerts",
    },
    BankQuestion {
        key: "industrialisation.algorithm.scale-trade-offs-settled",
        phase: Phase::Industrialisation,
        concern: Concern::Algorithm,
        kind: QuestionKind::Should,
        weight: 4,
        text: "Trade-offs between relevance, processing time, cost and compute power settled for scaling up",
    },
    BankQuestion {
        key: "industrialisation.algorithm.validated-at-scale",
        phase: Phase::Industrialisation,
        concern: Concern::Algorithm,
        kind: QuestionKind::Should,
        weight: 4,
        text: "Performance validated on production volumes",
    },
    BankQuestion {
        key: "industrialisation.expected-result.measurement-built",
        phase: Phase::Industrialisation,
        concern: Concern::ExpectedResult,
        kind: QuestionKind::Must,
        weight: 1,
        text: "Way to measure the result in operation built and tested",
    },
    BankQuestion {
        key: "industrialisation.expected-result.pilot-criteria-defined",
        phase: Phase::Industrialisation,
        concern: Concern::ExpectedResult,
        kind: QuestionKind::Should,
        weight: 4,
        text: "Pilot scope and success criteria defined with the sponsor",
    },
    BankQuestion {
        key: "industrialisation.expected-result.kpi-targets-confirmed",
        phase: Phase::Industrialisation,
        concern: Concern::ExpectedResult,
        kind: QuestionKind::Should,
        weight: 4,
        text: "KPI targets confirmed for deployment",
    },
    BankQuestion {
        key: "industrialisation.expected-result.costs-benefits-recorded",
        phase: Phase::Industrialisation,
        concern: Concern::ExpectedResult,
        kind: QuestionKind::Should,
        weight: 3,
        text: "Costs and expected benefits recorded so that ROI, payback and NPV can be computed",
    },
    BankQuestion {
        key: "industrialisation.change-management.sponsor-pilot-engaged",
        phase: Phase::Industrialisation,
        concern: Concern::ChangeManagement,
        kind: QuestionKind::Must,
        weight: 1,
        text: "Sponsor actively engaged in the pilot, where business commitment is essential before deploying",
    },
    BankQuestion {
        key: "industrialisation.change-management.communication-plan",
        phase: Phase::Industrialisation,
        concern: Concern::ChangeManagement,
        kind: QuestionKind::Should,
        weight: 4,
        text: "Communication plan and support actions in place",
    },
    BankQuestion {
        key: "industrialisation.change-management.explanations-provided",
        phase: Phase::Industrialisation,
        concern: Concern::ChangeManagement,
        kind: QuestionKind::Should,
        weight: 4,
        text: "Explanations of the results available to users, so that they do not have to trust a black box",
    },
    BankQuestion {
        key: "industrialisation.change-management.it-skills-built",
        phase: Phase::Industrialisation,
        concern: Concern::ChangeManagement,
        kind: QuestionKind::Should,
        weight: 3,
        text: "IT teams trained on the cloud and managed services they now consume rather than operate",
    },
    BankQuestion {
        key: "industrialisation.technical-integration.operations-defined",
        phase: Phase::Industrialisation,
        concern: Concern::TechnicalIntegration,
        kind: QuestionKind::Must,
        weight: 1,
        text: "Operations (run) arrangements defined: who runs, monitors and supports the system (1 studied case in 3 needed specific ones)",
    },
    BankQuestion {
        key: "industrialisation.technical-integration.existing-systems-modified",
        phase: Phase::Industrialisation,
        concern: Concern::TechnicalIntegration,
        kind: QuestionKind::Should,
        weight: 4,
        text: "Existing systems modified and tested with the solution",
    },
    BankQuestion {
        key: "industrialisation.technical-integration.run-costs-budgeted",
        phase: Phase::Industrialisation,
        concern: Concern::TechnicalIntegration,
        kind: QuestionKind::Should,
        weight: 4,
        text: "Run and infrastructure costs budgeted",
    },
    BankQuestion {
        key: "industrialisation.technical-integration.access-security-reviewed",
        phase: Phase::Industrialisation,
        concern: Concern::TechnicalIntegration,
        kind: QuestionKind::Should,
        weight: 4,
        text: "Security of data access reviewed and issues resolved",
    },
    BankQuestion {
        key: "industrialisation.technical-integration.results-exposed",
        phase: Phase::Industrialisation,
        concern: Concern::TechnicalIntegration,
        kind: QuestionKind::Should,
        weight: 3,
        text: "Results exposed through APIs for real-time flows, batch where it is enough",
    },
    BankQuestion {
        key: "industrialisation.ethics.anonymisation-industrialised",
        phase: Phase::Industrialisation,
        concern: Concern::Ethics,
        kind: QuestionKind::Must,
        weight: 1,
        text: "Anonymisation or pseudonymisation of personal data built into the industrialised pipelines",
    },
    BankQuestion {
        key: "industrialisation.ethics.human-oversight",
        phase: Phase::Industrialisation,
        concern: Concern::Ethics,
        kind: QuestionKind::Should,
        weight: 5,
        text: "Human oversight of the system's outputs defined: who reviews them, when, and how they can be overridden",
    },
    BankQuestion {
        key: "industrialisation.ethics.logging",
        phase: Phase::Industrialisation,
        concern: Concern::Ethics,
        kind: QuestionKind::Should,
        weight: 5,
        text: "The system's operation and decisions are logged for traceability",
    },
    BankQuestion {
        key: "industrialisation.ethics.workers-informed",
        phase: Phase::Industrialisation,
        concern: Concern::Ethics,
        kind: QuestionKind::Should,
        weight: 4,
        text: "The workers affected by the system are informed before it is used",
    },
    BankQuestion {
        key: "industrialisation.ethics.bias-rechecked",
        phase: Phase::Industrialisation,
        concern: Concern::Ethics,
        kind: QuestionKind::Should,
        weight: 4,
        text: "Bias and discrimination checked again on production data, beyond the narrow POC context",
    },
    // DEPLOYMENT
    BankQuestion {
        key: "deployment.data.feeds-monitored",
        phase: Phase::Deployment,
        concern: Concern::Data,
        kind: QuestionKind::Must,
        weight: 1,
        text: "Production data feeds run automatically and are monitored by operations",
    },
    BankQuestion {
        key: "deployment.data.drift-monitored",
        phase: Phase::Deployment,
        concern: Concern::Data,
        kind: QuestionKind::Should,
        weight: 4,
        text: "Input data monitored for distortion after go-live and when scaling up",
    },
    BankQuestion {
        key: "deployment.data.outcomes-collected",
        phase: Phase::Deployment,
        concern: Concern::Data,
        kind: QuestionKind::Should,
        weight: 3,
        text: "Production data and actual outcomes collected for retraining",
    },
    BankQuestion {
        key: "deployment.data.retention-applied",
        phase: Phase::Deployment,
        concern: Concern::Data,
        kind: QuestionKind::Should,
        weight: 3,
        text: "Retention and deletion rules applied to the data, personal data first",
    },
    BankQuestion {
        key: "deployment.algorithm.relevance-monitored",
        phase: Phase::Deployment,
        concern: Concern::Algorithm,
        kind: QuestionKind::Must,
        weight: 1,
        text: "Model relevance monitored regularly in production (all studied cases do)",
    },
    BankQuestion {
        key: "deployment.algorithm.retraining-run",
        phase: Phase::Deployment,
        concern: Concern::Algorithm,
        kind: QuestionKind::Should,
        weight: 4,
        text: "Retraining run as planned and each new model validated before release",
    },
    BankQuestion {
        key: "deployment.algorithm.poc-results-confirmed",
        phase: Phase::Deployment,
        concern: Concern::Algorithm,
        kind: QuestionKind::Should,
        weight: 4,
        text: "Production results confirm the POC results",
    },
    BankQuestion {
        key: "deployment.algorithm.rollback-possible",
        phase: Phase::Deployment,
        concern: Concern::Algorithm,
        kind: QuestionKind::Should,
        weight: 3,
        text: "Previous model version can be restored quickly",
    },
    BankQuestion {
        key: "deployment.expected-result.gain-measured",
        phase: Phase::Deployment,
        concern: Concern::ExpectedResult,
        kind: QuestionKind::Must,
        weight: 1,
        text: "Success indicators measured after deployment and compared with the baseline, and the gain computed",
    },
    BankQuestion {
        key: "deployment.expected-result.roi-reviewed",
        phase: Phase::Deployment,
        concern: Concern::ExpectedResult,
        kind: QuestionKind::Should,
        weight: 4,
        text: "ROI and payback reviewed against the estimate",
    },
    BankQuestion {
        key: "deployment.expected-result.rollout-measured",
        phase: Phase::Deployment,
        concern: Concern::ExpectedResult,
        kind: QuestionKind::Should,
        weight: 3,
        text: "Each step of the roll-out measured (for a callbot: waiting time, pick-up rate, automated qualification rate)",
    },
    BankQuestion {
        key: "deployment.expected-result.results-shared",
        phase: Phase::Deployment,
        concern: Concern::ExpectedResult,
        kind: QuestionKind::Should,
        weight: 3,
        text: "Results shared with the sponsor and the teams concerned",
    },
    BankQuestion {
        key: "deployment.expected-result.next-uses-identified",
        phase: Phase::Deployment,
        concern: Concern::ExpectedResult,
        kind: QuestionKind::Should,
        weight: 2,
        text: "Lessons learned recorded and further use cases identified",
    },
    BankQuestion {
        key: "deployment.change-management.sponsor-accountable",
        phase: Phase::Deployment,
        concern: Concern::ChangeManagement,
        kind: QuestionKind::Must,
        weight: 1,
        text: "Sponsor engaged in the deployment and accountable for the gain",
    },
    BankQuestion {
        key: "deployment.change-management.progressive-rollout",
        phase: Phase::Deployment,
        concern: Concern::ChangeManagement,
        kind: QuestionKind::Should,
        weight: 4,
        text: "Roll-out progressive, to win the business teams' support",
    },
    BankQuestion {
        key: "deployment.change-management.adoption-tracked",
        phase: Phase::Deployment,
        concern: Concern::ChangeManagement,
        kind: QuestionKind::Should,
        weight: 4,
        text: "Adoption tracked and users' concerns, such as fear of replacement, addressed",
    },
    BankQuestion {
        key: "deployment.change-management.benefits-communicated",
        phase: Phase::Deployment,
        concern: Concern::ChangeManagement,
        kind: QuestionKind::Should,
        weight: 4,
        text: "Benefits and performance of the automation communicated internally",
    },
    BankQuestion {
        key: "deployment.technical-integration.run-in-place",
        phase: Phase::Deployment,
        concern: Concern::TechnicalIntegration,
        kind: QuestionKind::Must,
        weight: 1,
        text: "Run arrangements in place: monitoring, support and incident handling",
    },
    BankQuestion {
        key: "deployment.technical-integration.run-costs-tracked",
        phase: Phase::Deployment,
        concern: Concern::TechnicalIntegration,
        kind: QuestionKind::Should,
        weight: 4,
        text: "Run and infrastructure costs tracked against the budget",
    },
    BankQuestion {
        key: "deployment.technical-integration.stability-monitored",
        phase: Phase::Deployment,
        concern: Concern::TechnicalIntegration,
        kind: QuestionKind::Should,
        weight: 3,
        text: "Stability and performance of the solution monitored",
    },
    BankQuestion {
        key: "deployment.technical-integration.capture-channel-verified",
        phase: Phase::Deployment,
        concern: Concern::TechnicalIntegration,
        kind: QuestionKind::Should,
        weight: 3,
        text: "Capture channel works end to end in production",
    },
    BankQuestion {
        key: "deployment.ethics.use-within-purpose",
        phase: Phase::Deployment,
        concern: Concern::Ethics,
        kind: QuestionKind::Must,
        weight: 1,
        text: "System used only for its assessed purpose, with no drift to a prohibited practice",
    },
    BankQuestion {
        key: "deployment.ethics.human-oversight-operating",
        phase: Phase::Deployment,
        concern: Concern::Ethics,
        kind: QuestionKind::Should,
        weight: 4,
        text: "Human oversight operating as defined, and overrides recorded",
    },
    BankQuestion {
        key: "deployment.ethics.bias-monitored",
        phase: Phase::Deployment,
        concern: Concern::Ethics,
        kind: QuestionKind::Should,
        weight: 4,
        text: "Bias and discrimination monitored in production",
    },
    BankQuestion {
        key: "deployment.ethics.ai-transparency",
        phase: Phase::Deployment,
        concern: Concern::Ethics,
        kind: QuestionKind::Should,
        weight: 3,
        text: "People interacting with the system told that they are dealing with an AI (for example callers of a callbot)",
    },
];

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;
    use crate::assessment::keys;

    fn phase_key(phase: Phase) -> String {
        phase.as_str().to_lowercase()
    }

    fn concern_key(concern: Concern) -> String {
        concern.as_str().to_lowercase().replace('_', "-")
    }

    fn find(key: &str) -> &'static BankQuestion {
        DEFAULT_BANK
            .iter()
            .find(|q| q.key == key)
            .unwrap_or_else(|| panic!("{key} is missing from the default bank"))
    }

    #[test]
    fn every_phase_and_concern_is_covered() {
        for &phase in Phase::ALL {
            for &concern in Concern::ALL {
                let items: Vec<_> = DEFAULT_BANK
                    .iter()
                    .filter(|q| q.phase == phase && q.concern == concern)
                    .collect();
                let musts = items
                    .iter()
                    .filter(|q| q.kind == QuestionKind::Must)
                    .count();
                let shoulds = items
                    .iter()
                    .filter(|q| q.kind == QuestionKind::Should)
                    .count();
                assert!(
                    items.len() >= 4,
                    "{phase}/{concern}: {} questions",
                    items.len()
                );
                assert!(musts >= 1, "{phase}/{concern}: no MUST item");
                assert!(shoulds >= 2, "{phase}/{concern}: {shoulds} SHOULD items");
            }
        }
        assert!(DEFAULT_BANK.len() >= 96, "{} questions", DEFAULT_BANK.len());
    }

    #[test]
    fn keys_are_unique_and_well_formed() {
        let mut seen = HashSet::new();
        for q in DEFAULT_BANK {
            assert!(seen.insert(q.key), "duplicate key {}", q.key);
            let parts: Vec<_> = q.key.split('.').collect();
            assert_eq!(parts.len(), 3, "{}: not <phase>.<concern>.<slug>", q.key);
            assert_eq!(parts[0], phase_key(q.phase), "{}: phase prefix", q.key);
            assert_eq!(parts[1], concern_key(q.concern), "{}: concern part", q.key);
            let slug = parts[2];
            assert!(
                !slug.is_empty()
                    && slug
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                    && !slug.starts_with('-')
                    && !slug.ends_with('-')
                    && !slug.contains("--"),
                "{}: slug is not kebab-case",
                q.key
            );
        }
    }

    #[test]
    fn weights_are_in_range() {
        for q in DEFAULT_BANK {
            match q.kind {
                QuestionKind::Must => assert_eq!(q.weight, 1, "{}: MUST weight", q.key),
                QuestionKind::Should => {
                    assert!((1..=5).contains(&q.weight), "{}: SHOULD weight", q.key)
                }
            }
        }
    }

    #[test]
    fn texts_are_short_and_clean() {
        for q in DEFAULT_BANK {
            assert!(!q.text.trim().is_empty(), "{}: empty text", q.key);
            assert!(q.text.chars().count() <= 300, "{}: text too long", q.key);
            assert_eq!(q.text, q.text.trim(), "{}: surrounding whitespace", q.key);
        }
    }

    #[test]
    fn keys_the_gate_engine_uses_exist() {
        let expected = [
            (keys::ANONYMISATION, Phase::Poc, QuestionKind::Must),
            (
                keys::HUMAN_OVERSIGHT,
                Phase::Industrialisation,
                QuestionKind::Should,
            ),
            (
                keys::LOGGING,
                Phase::Industrialisation,
                QuestionKind::Should,
            ),
            (
                keys::WORKERS_INFORMED,
                Phase::Industrialisation,
                QuestionKind::Should,
            ),
        ];
        for (key, phase, kind) in expected {
            let q = find(key);
            assert_eq!(q.phase, phase, "{key}: phase");
            assert_eq!(q.concern, Concern::Ethics, "{key}: concern");
            assert_eq!(q.kind, kind, "{key}: kind");
        }
    }
}
