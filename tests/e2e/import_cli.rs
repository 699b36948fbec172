//! `jalon import costs FILE.csv` end to end (issue 12): the real `jalon`
//! binary, run as a child process, against the real server on each
//! backend. The samples are `tests/e2e/data/costs_native.csv` (Jalon's
//! columns) and `tests/e2e/data/focus_sample.csv` (a FOCUS 1.2 export
//! written from the specification's column list).
//!
//! The binary is built on first use (`cargo build -p jalon-server --bin
//! jalon`, in the same target directory) unless `JALON_BIN` names one.

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
    sync::OnceLock,
};

use jalon_proto::v1 as pb;
use tonic::Code;

use crate::helpers::*;

const ACME_ADMIN: &str = "ada";
const ACME_DIRECTOR: &str = "dora";
const ACME_ERP: &str = "erp";
const GLOBEX_ADMIN: &str = "gus";

/// The `jalon` binary of this build.
fn jalon_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        if let Ok(path) = std::env::var("JALON_BIN")
            && !path.is_empty()
        {
            return PathBuf::from(path);
        }
        // target/<profile>/deps/e2e-… -> target/<profile>/jalon
        let exe = std::env::current_exe().expect("the test's path");
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("the target directory")
            .to_path_buf();
        let binary = profile_dir.join("jalon");
        // Built by `cargo test --workspace`, or by an earlier run: rebuilt
        // only when a source it is made of is newer (a build with this
        // test's feature set would otherwise rebuild shared dependencies).
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let built = std::fs::metadata(&binary).and_then(|m| m.modified()).ok();
        let sources = [
            "services/jalon-server",
            "services/jalon-core",
            "services/jalon-store",
            "services/jalon-proto",
            "migrations",
            "proto",
            "Cargo.toml",
            "Cargo.lock",
        ]
        .iter()
        .filter_map(|p| newest(&root.join(p)))
        .max();
        if let (Some(built), Some(sources)) = (built, sources)
            && built >= sources
        {
            return binary;
        }
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut build = Command::new(cargo);
        build.args(["build", "-q", "-p", "jalon-server", "--bin", "jalon"]);
        if profile_dir.ends_with("release") {
            build.arg("--release");
        }
        let status = build.status().expect("run cargo build");
        assert!(status.success(), "cargo build -p jalon-server failed");
        binary
    })
}

/// The newest modification time under `path`.
fn newest(path: &Path) -> Option<std::time::SystemTime> {
    let meta = std::fs::metadata(path).ok()?;
    if !meta.is_dir() {
        return meta.modified().ok();
    }
    std::fs::read_dir(path)
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|e| newest(&e.path()))
        .max()
}

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("e2e/data")
        .join(name)
}

/// What a run of the command gave.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    /// The rejects file, parsed: (line, field, reason, the row's values).
    rejects: Vec<Vec<String>>,
}

impl Run {
    fn summary_count(&self, label: &str) -> u64 {
        self.stdout
            .lines()
            .find_map(|l| {
                let l = l.trim_start();
                l.strip_prefix(label)
                    .and_then(|rest| rest.split_whitespace().next())
                    .and_then(|n| n.parse().ok())
            })
            .unwrap_or_else(|| panic!("no '{label}' in the summary:\n{}", self.stdout))
    }

    fn rejected_lines(&self) -> Vec<u64> {
        self.rejects
            .iter()
            .map(|r| r[0].parse().expect("a line number"))
            .collect()
    }

    fn reject_of(&self, line: u64) -> &Vec<String> {
        self.rejects
            .iter()
            .find(|r| r[0] == line.to_string())
            .unwrap_or_else(|| panic!("line {line} is not in the rejects: {:?}", self.rejects))
    }
}

/// Runs `jalon import costs FILE` against `app` as `subject`; the rejects
/// go to a file of their own in `dir`.
async fn import(
    app: &TestApp,
    subject: &str,
    organisation: &str,
    source: &str,
    file: &Path,
    dir: &Path,
    extra: &[&str],
) -> Run {
    let rejects = dir.join(format!("rejects-{}.csv", uuid::Uuid::now_v7().simple()));
    let mut command = Command::new(jalon_binary());
    command
        .arg("import")
        .arg("costs")
        .arg(file)
        .args(["--server", &format!("http://{}", app.addr)])
        .args(["--organisation", organisation])
        .args(["--source", source])
        .args(extra)
        .env("JALON_TOKEN", token(subject))
        .env_remove("JALON_SERVER")
        .env_remove("JALON_ORGANISATION");
    let rejects = match extra.iter().position(|a| *a == "--rejects") {
        Some(i) => PathBuf::from(extra[i + 1]),
        None => {
            command.arg("--rejects").arg(&rejects);
            rejects
        }
    };
    // The server answers on this runtime's thread: wait elsewhere.
    let output: Output = tokio::task::spawn_blocking(move || command.output())
        .await
        .expect("join")
        .expect("run jalon import costs");
    let rejects = csv_rows(&rejects).unwrap_or_default();
    Run {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        rejects,
    }
}

/// The records of a small CSV after its header (quoted fields, doubled
/// quotes, commas inside quotes), or None when there is no file.
fn csv_rows(path: &Path) -> Option<Vec<Vec<String>>> {
    let text = std::fs::read_to_string(path).ok()?;
    let mut rows = Vec::new();
    let (mut row, mut field, mut quoted) = (Vec::new(), String::new(), false);
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            ('"', _) => quoted = !quoted,
            (',', false) => row.push(std::mem::take(&mut field)),
            ('\n', false) => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
            (c, _) => field.push(c),
        }
    }
    if !field.is_empty() || !row.is_empty() {
        row.push(field);
        rows.push(row);
    }
    // The header names the columns: rejected_line, rejected_field,
    // rejected_reason, then the file's own.
    let header = rows.first()?.clone();
    assert_eq!(
        &header[..3],
        ["rejected_line", "rejected_field", "rejected_reason"]
    );
    Some(rows.into_iter().skip(1).collect())
}

/// Acme (admin, director, ERP integration; sources sap-fi and
/// focus-cloud; project A with WBS-A-100 and the cost collector
/// 123456789012; project B by the rule CC-4200) and Globex (its own
/// project with WBS-OTHER-ORG and a rule for CC-9999).
struct World {
    acme: String,
    globex: String,
    a: String,
    b: String,
    g: String,
}

async fn project(app: &TestApp, who: &str, org: &str, name: &str) -> String {
    let project = pb::Project {
        business_unit: "Finance".into(),
        ..minimal_project(name)
    };
    app.create_project(who, org, project).await.id
}

async fn source(app: &TestApp, who: &str, org: &str, name: &str) {
    app.finance()
        .create_cost_source(authed(
            who,
            pb::CreateCostSourceRequest {
                organisation_id: org.into(),
                source: Some(pb::CostSource {
                    name: name.into(),
                    display_name: name.into(),
                    create_time: None,
                }),
            },
        ))
        .await
        .expect("create source");
}

async fn cost_objects(
    app: &TestApp,
    who: &str,
    org: &str,
    project: &str,
    refs: &[(pb::CostObjectKind, &str)],
) {
    app.finance()
        .set_project_cost_objects(authed(
            who,
            pb::SetProjectCostObjectsRequest {
                organisation_id: org.into(),
                project_id: project.into(),
                cost_objects: refs
                    .iter()
                    .map(|(kind, reference)| pb::ProjectCostObject {
                        kind: *kind as i32,
                        reference: (*reference).into(),
                        project_id: String::new(),
                    })
                    .collect(),
            },
        ))
        .await
        .expect("set cost objects");
}

async fn rule(app: &TestApp, who: &str, org: &str, cost_centre: &str, project: &str) {
    app.finance()
        .set_cost_centre_rule(authed(
            who,
            pb::SetCostCentreRuleRequest {
                organisation_id: org.into(),
                rule: Some(pb::CostCentreRule {
                    cost_centre: cost_centre.into(),
                    project_id: project.into(),
                    create_time: None,
                }),
            },
        ))
        .await
        .expect("set rule");
}

async fn world(app: &TestApp) -> World {
    let (acme, _) = app.create_org("acme", ACME_ADMIN).await;
    app.add_person(ACME_ADMIN, &acme.id, ACME_DIRECTOR, pb::Role::Director)
        .await;
    app.add_person(ACME_ADMIN, &acme.id, ACME_ERP, pb::Role::Integration)
        .await;
    let a = project(app, ACME_DIRECTOR, &acme.id, "Callbot").await;
    let b = project(app, ACME_DIRECTOR, &acme.id, "Forecast").await;
    source(app, ACME_ADMIN, &acme.id, "sap-fi").await;
    source(app, ACME_ADMIN, &acme.id, "focus-cloud").await;
    cost_objects(
        app,
        ACME_ERP,
        &acme.id,
        &a,
        &[
            (pb::CostObjectKind::WbsElement, "WBS-A-100"),
            (pb::CostObjectKind::CostCollector, "123456789012"),
        ],
    )
    .await;
    rule(app, ACME_ADMIN, &acme.id, "CC-4200", &b).await;

    let (globex, _) = app.create_org("globex", GLOBEX_ADMIN).await;
    let g = project(app, GLOBEX_ADMIN, &globex.id, "Globex secret").await;
    source(app, GLOBEX_ADMIN, &globex.id, "sap-fi").await;
    cost_objects(
        app,
        GLOBEX_ADMIN,
        &globex.id,
        &g,
        &[(pb::CostObjectKind::WbsElement, "WBS-OTHER-ORG")],
    )
    .await;
    rule(app, GLOBEX_ADMIN, &globex.id, "CC-9999", &g).await;
    World {
        acme: acme.id,
        globex: globex.id,
        a,
        b,
        g,
    }
}

async fn total_cost(app: &TestApp, who: &str, org: &str, project: &str) -> String {
    app.finance()
        .get_project_financials(authed(
            who,
            pb::GetProjectFinancialsRequest {
                organisation_id: org.into(),
                project_id: project.into(),
            },
        ))
        .await
        .expect("financials")
        .into_inner()
        .total_cost
        .map(|m| m.amount)
        .unwrap_or_default()
}

async fn costs_of(app: &TestApp, who: &str, org: &str, project: &str) -> Vec<pb::Cost> {
    let mut out = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = app
            .finance()
            .list_costs(authed(
                who,
                pb::ListCostsRequest {
                    organisation_id: org.into(),
                    project_id: project.into(),
                    page_size: 500,
                    page_token: page_token.clone(),
                    ..Default::default()
                },
            ))
            .await
            .expect("list costs")
            .into_inner();
        out.extend(page.costs);
        if page.next_page_token.is_empty() {
            return out;
        }
        page_token = page.next_page_token;
    }
}

fn temp_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "jalon-import-cli-{}",
        uuid::Uuid::now_v7().simple()
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

#[tokio::test]
async fn native_and_focus_files_import_and_a_rerun_changes_nothing() {
    on_each_backend(async |app: &TestApp| {
        let w = world(app).await;
        let dir = temp_dir();
        let native = data("costs_native.csv");

        // Jalon's columns: 5 rows accepted (one by WBS element, one by the
        // cost-centre rule, one converted from dollars, a partial reversal,
        // a quoted description), 4 rejected.
        let first = import(
            app,
            ACME_ERP,
            &w.acme,
            "sap-fi",
            &native,
            &dir,
            &["--batch", "3"],
        )
        .await;
        assert_eq!(first.code, Some(3), "{}\n{}", first.stdout, first.stderr);
        assert_eq!(first.summary_count("imported"), 5, "{}", first.stdout);
        assert_eq!(first.summary_count("duplicates"), 0);
        assert_eq!(first.summary_count("rejected"), 4);
        assert!(first.stdout.contains("Jalon columns"), "{}", first.stdout);
        // The totals of the file as sent: euros, and the dollar line.
        assert!(first.stdout.contains("EUR 2100.00"), "{}", first.stdout);
        assert!(first.stdout.contains("USD 200.25"), "{}", first.stdout);
        assert_eq!(first.rejected_lines(), [5, 6, 8, 10], "{:?}", first.rejects);
        // Each reject: its line, the column to blame, the reason, and the
        // row as it was (so the file can be fixed and imported again).
        let unknown = first.reject_of(5);
        assert_eq!(unknown[1], "project_ref");
        assert_eq!(unknown[3], "SAP-5100000004");
        let category = first.reject_of(6);
        assert_eq!(category[1], "category");
        assert!(category[2].contains("catering"), "{category:?}");
        let foreign = first.reject_of(8);
        assert_eq!(foreign[1], "project_ref");
        assert_eq!(foreign[4], "WBS-OTHER-ORG");
        let day = first.reject_of(10);
        assert_eq!(day[1], "incurred_on");
        // 1200 + 180.22 (200.25 USD at 0.9, half-even) - 200 + 300.
        assert_eq!(total_cost(app, ACME_ERP, &w.acme, &w.a).await, "1480.22");
        assert_eq!(total_cost(app, ACME_ERP, &w.acme, &w.b).await, "800.00");
        let a_costs = costs_of(app, ACME_ERP, &w.acme, &w.a).await;
        assert_eq!(a_costs.len(), 4);
        let reversal = a_costs
            .iter()
            .find(|c| c.external_ref == "SAP-5100000001-R1")
            .expect("the reversal");
        let reversed = a_costs
            .iter()
            .find(|c| c.external_ref == "SAP-5100000001")
            .expect("the reversed line");
        assert_eq!(reversal.reverses_cost_id, reversed.id);
        assert!(
            a_costs
                .iter()
                .any(|c| c.description == "Licence, annual" && c.source == "sap-fi")
        );

        // A FOCUS export, recognised by its header: 7 accepted (by
        // sub-account, tag and x_CostCenter; a correction as a partial
        // reversal; a positive correction as a line), 3 rejected.
        let focus = data("focus_sample.csv");
        let f = import(app, ACME_ERP, &w.acme, "focus-cloud", &focus, &dir, &[]).await;
        assert_eq!(f.code, Some(3), "{}\n{}", f.stdout, f.stderr);
        assert!(f.stdout.contains("FOCUS"), "{}", f.stdout);
        assert_eq!(f.summary_count("imported"), 7, "{}", f.stdout);
        assert_eq!(f.summary_count("rejected"), 3);
        assert_eq!(f.rejected_lines(), [7, 9, 11], "{:?}", f.rejects);
        assert_eq!(f.reject_of(7)[1], "ChargeCategory");
        assert!(f.reject_of(7)[2].contains("credits are not modelled"));
        assert_eq!(f.reject_of(9)[1], "SubAccountId/Tags");
        assert_eq!(f.reject_of(11)[1], "BilledCost");
        assert!(f.reject_of(11)[2].contains("EUR"), "{:?}", f.reject_of(11));
        // 1480.22 + 1534.57 + 90.00 + 325.00 + 42.10 - 134.57 + 12.00
        assert_eq!(total_cost(app, ACME_ERP, &w.acme, &w.a).await, "3349.32");
        assert_eq!(total_cost(app, ACME_ERP, &w.acme, &w.b).await, "817.25");
        let a_costs = costs_of(app, ACME_ERP, &w.acme, &w.a).await;
        let focus_costs: Vec<&pb::Cost> = a_costs
            .iter()
            .filter(|c| c.source == "focus-cloud")
            .collect();
        assert_eq!(focus_costs.len(), 6);
        let gpu = focus_costs
            .iter()
            .find(|c| c.description == "GPU instance hours (invoice INV-2026-01)")
            .expect("the GPU line, with its invoice");
        assert_eq!(gpu.amount.as_ref().unwrap().amount, "1534.57");
        assert_eq!(gpu.posting_period, "2026-01");
        assert_eq!(gpu.category, pb::CostCategory::Cloud as i32);
        assert_eq!(gpu.nature, pb::CostNature::Opex as i32);
        let correction = focus_costs
            .iter()
            .find(|c| !c.reverses_cost_id.is_empty())
            .expect("the correction, as a reversal");
        assert_eq!(correction.reverses_cost_id, gpu.id);
        assert_eq!(correction.amount.as_ref().unwrap().amount, "-134.57");
        assert_eq!(correction.posting_period, "2026-02");
        assert_eq!(correction.incurred_on, gpu.incurred_on);
        let tax = focus_costs
            .iter()
            .find(|c| c.category == pb::CostCategory::Other as i32)
            .expect("the tax line");
        assert_eq!(tax.amount.as_ref().unwrap().amount, "325.00");

        // Re-running both files changes nothing: duplicates, the same
        // rejects, the same totals.
        let again = import(app, ACME_ERP, &w.acme, "sap-fi", &native, &dir, &[]).await;
        assert_eq!(again.code, Some(3), "{}\n{}", again.stdout, again.stderr);
        assert_eq!(again.summary_count("imported"), 0, "{}", again.stdout);
        assert_eq!(again.summary_count("duplicates"), 5);
        assert_eq!(again.rejected_lines(), [5, 6, 8, 10]);
        let f_again = import(
            app,
            ACME_ERP,
            &w.acme,
            "focus-cloud",
            &focus,
            &dir,
            &["--batch", "1"],
        )
        .await;
        assert_eq!(f_again.summary_count("imported"), 0, "{}", f_again.stdout);
        assert_eq!(f_again.summary_count("duplicates"), 7);
        assert_eq!(f_again.rejected_lines(), [7, 9, 11]);
        assert_eq!(total_cost(app, ACME_ERP, &w.acme, &w.a).await, "3349.32");
        assert_eq!(total_cost(app, ACME_ERP, &w.acme, &w.b).await, "817.25");
        assert_eq!(costs_of(app, ACME_ERP, &w.acme, &w.a).await.len(), 10);

        // Globex saw nothing of it.
        assert_eq!(total_cost(app, GLOBEX_ADMIN, &w.globex, &w.g).await, "0.00");
        let _ = std::fs::remove_dir_all(&dir);
    })
    .await;
}

#[tokio::test]
async fn unknown_and_foreign_references_reject_only_their_rows() {
    on_each_backend(async |app: &TestApp| {
        let w = world(app).await;
        let dir = temp_dir();
        // A file naming Globex's project by id, its WBS element, its
        // cost-centre rule, an unknown reference, and good rows around them.
        let file = dir.join("mixed.csv");
        std::fs::write(
            &file,
            format!(
                "external_ref;project_id;project_ref;cost_centre;incurred_on;category;nature;amount\n\
                 M-1;;WBS-A-100;;2026-03-01;cloud;opex;10.00\n\
                 M-2;{g};;;2026-03-01;cloud;opex;11.00\n\
                 M-3;;WBS-OTHER-ORG;;2026-03-01;cloud;opex;12.00\n\
                 M-4;;;CC-9999;2026-03-01;cloud;opex;13.00\n\
                 M-5;;WBS-NOPE;;2026-03-01;cloud;opex;14.00\n\
                 M-6;;;CC-4200;2026-03-01;cloud;opex;15.00\n",
                g = w.g
            ),
        )
        .unwrap();
        let run = import(app, ACME_ERP, &w.acme, "sap-fi", &file, &dir, &[]).await;
        assert_eq!(run.code, Some(3), "{}\n{}", run.stdout, run.stderr);
        assert_eq!(run.summary_count("imported"), 2, "{}", run.stdout);
        assert_eq!(run.summary_count("rejected"), 4);
        assert_eq!(run.rejected_lines(), [3, 4, 5, 6], "{:?}", run.rejects);
        // Another organisation's project is, to Acme, a project that does
        // not exist.
        let foreign_id = run.reject_of(3);
        assert!(foreign_id[2].contains("not found") || foreign_id[2].contains("no project"), "{foreign_id:?}");
        assert_eq!(run.reject_of(4)[1], "project_ref");
        assert_eq!(run.reject_of(5)[1], "cost_centre");
        assert_eq!(run.reject_of(6)[1], "project_ref");
        assert_eq!(total_cost(app, ACME_ERP, &w.acme, &w.a).await, "10.00");
        assert_eq!(total_cost(app, ACME_ERP, &w.acme, &w.b).await, "15.00");
        // Globex's project got nothing, and Acme cannot read it.
        assert_eq!(total_cost(app, GLOBEX_ADMIN, &w.globex, &w.g).await, "0.00");
        assert!(costs_of(app, GLOBEX_ADMIN, &w.globex, &w.g).await.is_empty());
        let peek = app
            .finance()
            .get_project_financials(authed(
                ACME_ERP,
                pb::GetProjectFinancialsRequest {
                    organisation_id: w.globex.clone(),
                    project_id: w.g.clone(),
                },
            ))
            .await;
        assert!(peek.is_err());

        // Acme's integration cannot import into Globex at all: the command
        // fails (exit 1) and nothing is written there.
        let into_globex = import(app, ACME_ERP, &w.globex, "sap-fi", &file, &dir, &[]).await;
        assert_eq!(into_globex.code, Some(1), "{}\n{}", into_globex.stdout, into_globex.stderr);
        assert!(into_globex.stderr.contains("organisation"), "{}", into_globex.stderr);
        assert!(costs_of(app, GLOBEX_ADMIN, &w.globex, &w.g).await.is_empty());

        // An unregistered source is refused before any row is sent.
        let bad_source = import(app, ACME_ERP, &w.acme, "workday", &file, &dir, &[]).await;
        assert_eq!(bad_source.code, Some(1));
        assert!(bad_source.stderr.contains("workday"), "{}", bad_source.stderr);
        // A file that is not a cost file is refused by its header.
        let odd = dir.join("odd.csv");
        std::fs::write(&odd, "ref,amout\nX,1\n").unwrap();
        let refused = import(app, ACME_ERP, &w.acme, "sap-fi", &odd, &dir, &[]).await;
        assert_eq!(refused.code, Some(1));
        assert!(refused.stderr.contains("header"), "{}", refused.stderr);
        assert_eq!(total_cost(app, ACME_ERP, &w.acme, &w.a).await, "10.00");
        let _ = std::fs::remove_dir_all(&dir);
    })
    .await;
}

#[tokio::test]
async fn a_corrected_rejects_file_imports_as_it_is() {
    on_each_backend(async |app: &TestApp| {
        let w = world(app).await;
        let dir = temp_dir();
        let file = dir.join("two.csv");
        std::fs::write(
            &file,
            "external_ref,project_ref,incurred_on,category,nature,amount\n\
             R-1,WBS-A-100,2026-04-01,cloud,opex,5.00\n\
             R-2,WBS-A-1OO,2026-04-01,cloud,opex,6.00\n",
        )
        .unwrap();
        let rejects = dir.join("two.rejects.csv");
        let first = import(
            app,
            ACME_ERP,
            &w.acme,
            "sap-fi",
            &file,
            &dir,
            &["--rejects", rejects.to_str().unwrap()],
        )
        .await;
        assert_eq!(first.code, Some(3), "{}\n{}", first.stdout, first.stderr);
        // The finance team fixes the typo in the rejects file and imports it.
        let text = std::fs::read_to_string(&rejects).unwrap();
        assert!(
            text.starts_with("rejected_line,rejected_field,rejected_reason,external_ref,"),
            "{text}"
        );
        std::fs::write(&rejects, text.replace("WBS-A-1OO", "WBS-A-100")).unwrap();
        let fixed = import(app, ACME_ERP, &w.acme, "sap-fi", &rejects, &dir, &[]).await;
        assert_eq!(fixed.code, Some(0), "{}\n{}", fixed.stdout, fixed.stderr);
        assert_eq!(fixed.summary_count("imported"), 1);
        assert_eq!(total_cost(app, ACME_ERP, &w.acme, &w.a).await, "11.00");
        expect_code(
            app.finance()
                .list_costs(authed(
                    ACME_ERP,
                    pb::ListCostsRequest {
                        organisation_id: w.acme.clone(),
                        project_id: w.g.clone(),
                        ..Default::default()
                    },
                ))
                .await,
            Code::NotFound,
        );
        let _ = std::fs::remove_dir_all(&dir);
    })
    .await;
}
