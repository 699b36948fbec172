//! `jalon`: serve the API, apply migrations, or mint a development token.

use std::{path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};
use figment::{Figment, providers::Serialized};
use jalon_server::{
    Application,
    auth::{Authenticator, DEV_ADMIN_SUBJECT, DevSecret, parse_ttl},
    config::{self, Settings},
    startup::{connect, migrate, pool_options, shutdown_signal},
    telemetry,
};
use jalon_store::Store;

/// jemalloc, with its background thread (the `background_threads` feature):
/// the memory freed after a load peak goes back to the system within its
/// decay time (10 s), even while the server is idle. See the README's
/// overload benchmark for the figures against glibc's malloc and mimalloc.
#[cfg(feature = "jemalloc")]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Jalon: run an enterprise's AI projects from idea to production as a
/// portfolio.
#[derive(Parser)]
#[command(name = "jalon", version, about)]
struct Cli {
    /// A TOML configuration file (see the README); `JALON__…` variables and
    /// flags override it.
    #[arg(long, global = true, env = "JALON_CONFIG")]
    config: Option<PathBuf>,
    /// Database URL: sqlite://FILE?mode=rwc (default: ./jalon.db) or
    /// postgres://… [env: JALON__DATABASE__URL]
    #[arg(long, global = true)]
    database_url: Option<String>,
    /// Log format: text or json [env: JALON__LOG__FORMAT]
    #[arg(long, global = true)]
    log_format: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the gRPC API (and gRPC-Web) until SIGTERM or Ctrl-C.
    Serve {
        /// Address to listen on [default: 127.0.0.1:50051]
        #[arg(long)]
        listen: Option<String>,
        /// Apply pending migrations first (the default on SQLite).
        #[arg(long)]
        migrate: bool,
        /// Seed, once, the demo portfolio (the white paper's six use cases)
        /// and print a token for its innovation director.
        #[arg(long)]
        demo: bool,
    },
    /// Apply pending migrations to the configured database and exit.
    Migrate,
    /// Recompute an organisation's portfolio figures from scratch and exit
    /// (one transaction: that organisation's writes wait meanwhile).
    RebuildPortfolio {
        /// The organisation: its slug or its id.
        #[arg(long)]
        organisation: String,
    },
    /// Import a file through the API of a running server (a client: it
    /// needs no database, only --server and a token).
    Import {
        #[command(subcommand)]
        what: ImportCommand,
    },
    /// Mint a development token (development mode or auth.hs256_secret only).
    Token {
        /// The token's subject (`sub`), e.g. dev-admin.
        #[arg(long, default_value = DEV_ADMIN_SUBJECT)]
        subject: String,
        /// Lifetime, e.g. 30m, 12h, 7d.
        #[arg(long, default_value = "12h")]
        ttl: String,
    },
}

#[derive(Subcommand)]
enum ImportCommand {
    /// Stream a CSV of costs (Jalon's columns, or a FOCUS 1.x export) through
    /// FinanceService/ImportCosts: progress on stderr, a summary on stdout,
    /// rejected rows with their line and reason in a rejects file. Exit
    /// status 0: every row imported or already there; 3: some rows were
    /// rejected; 1: the import could not complete; 2: a bad command line. Re-running the same file
    /// changes nothing.
    Costs(CostsArgs),
}

#[derive(clap::Args)]
struct CostsArgs {
    /// The CSV file (`,`, `;` or tab separated, UTF-8, with a header).
    file: PathBuf,
    /// The server's gRPC address (http:// or https://).
    #[arg(long, env = "JALON_SERVER", default_value = "http://127.0.0.1:50051")]
    server: String,
    /// The organisation: its id or its slug.
    #[arg(long, env = "JALON_ORGANISATION")]
    organisation: String,
    /// The finance source of every row (registered with CreateCostSource,
    /// or "manual").
    #[arg(long)]
    source: String,
    /// A bearer token (ADMIN, DIRECTOR or INTEGRATION).
    #[arg(long, env = "JALON_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Where to write the rejected rows [default: FILE's name with
    /// .rejects.csv, beside it].
    #[arg(long)]
    rejects: Option<PathBuf>,
    /// Rows per message of the stream (1 to 5000).
    #[arg(long, default_value_t = jalon_server::cost_import::DEFAULT_BATCH)]
    batch: usize,
    /// A PEM file of the certificate authority of an https:// server, when
    /// it is not a public one.
    #[arg(long)]
    ca_file: Option<PathBuf>,
}

/// `jalon import costs`: the summary on stdout, exit 3 when rows were
/// rejected.
async fn import_costs(args: CostsArgs) -> ExitCode {
    use jalon_server::cost_import::{self, CostsImport, EXIT_REJECTED};
    let import = CostsImport {
        file: args.file.clone(),
        server: args.server,
        organisation: args.organisation,
        source: args.source,
        token: args.token.unwrap_or_default(),
        rejects: args.rejects,
        batch: args.batch,
        ca_file: args.ca_file,
    };
    match cost_import::run(import).await {
        Ok(summary) => {
            print!("{}", summary.text(&args.file));
            if summary.rejected > 0 {
                ExitCode::from(EXIT_REJECTED)
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(message) => {
            eprintln!("jalon: {message}");
            ExitCode::FAILURE
        }
    }
}

/// The flags, as a layer over the configuration.
fn overrides(cli: &Cli) -> Figment {
    let mut overrides = Figment::new();
    if let Some(url) = &cli.database_url {
        overrides = overrides.merge(Serialized::default("database.url", url));
    }
    if let Some(format) = &cli.log_format {
        overrides = overrides.merge(Serialized::default("log.format", format));
    }
    match &cli.command {
        Command::Serve {
            listen, migrate, ..
        } => {
            if let Some(listen) = listen {
                overrides = overrides.merge(Serialized::default("server.listen", listen));
            }
            if *migrate {
                overrides = overrides.merge(Serialized::default("database.migrate", true));
            }
        }
        Command::Migrate
        | Command::RebuildPortfolio { .. }
        | Command::Token { .. }
        | Command::Import { .. } => {}
    }
    overrides
}

async fn run(cli: Cli) -> Result<(), String> {
    let settings = config::load(cli.config.as_deref(), overrides(&cli))?;
    // Whatever fails below, the message never holds the database password.
    let database = settings.database.clone();
    execute(cli.command, settings)
        .await
        .map_err(|message| database.redact(&message))
}

async fn execute(command: Command, settings: Settings) -> Result<(), String> {
    match command {
        Command::Serve { demo, .. } => {
            let traces = telemetry::Traces::new(&settings.tracing)?;
            telemetry::init(&settings.log, traces.as_ref());
            if let Some(endpoint) = settings.tracing.endpoint() {
                tracing::info!(%endpoint, sample_ratio = settings.tracing.sample_ratio, "exporting traces over OTLP");
            }
            let app = Application::build(settings).await?;
            let addr = app.local_addr();
            if demo {
                let seeded = jalon_server::demo::seed(app.store())
                    .await
                    .map_err(|e| format!("cannot seed the demo portfolio: {e}"))?;
                let org = jalon_server::demo::organisation_id(app.store())
                    .await
                    .map_err(|e| e.to_string())?
                    .map(|id| id.to_string())
                    .unwrap_or_default();
                println!(
                    "demo portfolio {} (organisation {org}, slug {})",
                    if seeded { "seeded" } else { "already there" },
                    jalon_server::demo::SLUG
                );
                match app.mint_token(
                    jalon_server::demo::DIRECTOR,
                    std::time::Duration::from_secs(12 * 3600),
                ) {
                    Ok(token) => println!(
                        "the innovation director's token (12h):\n  export ORG={org}\n  export TOKEN={token}"
                    ),
                    Err(_) => println!(
                        "sign in as the subject {} with your identity provider to explore it",
                        jalon_server::demo::DIRECTOR
                    ),
                }
            }
            tracing::info!(%addr, development_mode = app.development_mode(), "listening");
            println!("jalon listening on {addr} (gRPC and gRPC-Web)");
            if let Some(metrics) = app.metrics_addr() {
                println!("Prometheus metrics at http://{metrics}/metrics");
            }
            if demo {
                // The demo's own instructions are printed above.
            } else if app.development_mode() {
                println!(
                    "development mode: get a platform-administrator token with\n  \
                     export TOKEN=$(jalon token --subject {DEV_ADMIN_SUBJECT})\n\
                     then: grpcurl -plaintext -H \"authorization: Bearer $TOKEN\" {addr} list"
                );
            } else {
                println!("tokens come from your identity provider (auth.issuer / auth.audience)");
            }
            let result = app.run_until(shutdown_signal()).await;
            if let Some(traces) = traces {
                let flushed = tokio::task::spawn_blocking(move || traces.shutdown()).await;
                if let Ok(Err(e)) = flushed {
                    tracing::warn!(error = %e, "the last spans were not exported");
                }
            }
            result
        }
        Command::Migrate => {
            telemetry::init(&settings.log, None);
            println!("{}", migrate(&settings.database).await?);
            Ok(())
        }
        Command::RebuildPortfolio { organisation } => {
            telemetry::init(&settings.log, None);
            let store = connect(&settings.database, &pool_options(&settings.database)).await?;
            let result = rebuild_portfolio(&store, &organisation).await;
            store.close().await;
            result
        }
        // Handled in main, before any configuration is read.
        Command::Import { .. } => Err("`jalon import` is a client of a running server".into()),
        Command::Token { subject, ttl } => {
            let ttl = parse_ttl(&ttl)?;
            // A secret created here would sign tokens no server accepts.
            let authenticator =
                Authenticator::load(&settings.auth, &settings.database, DevSecret::MustExist)?;
            let token = authenticator.mint(&subject, ttl)?;
            // On stderr, so that `TOKEN=$(jalon token)` takes the token only.
            eprintln!("jalon: token signed with {}", authenticator.secret_source());
            println!("{token}");
            Ok(())
        }
    }
}

/// `jalon rebuild-portfolio`: the organisation by slug or id, on a migrated
/// database.
async fn rebuild_portfolio(store: &Store, organisation: &str) -> Result<(), String> {
    let pending = store.pending_migrations().await?;
    if !pending.is_empty() {
        return Err(format!(
            "the database lacks {} migration(s): run `jalon migrate` first",
            pending.len()
        ));
    }
    let found = match uuid::Uuid::parse_str(organisation) {
        Ok(id) => jalon_store::organisations::get(store.db(), id).await.ok(),
        Err(_) => jalon_store::organisations::find_by_slug(store.db(), organisation)
            .await
            .map_err(|e| e.to_string())?,
    };
    let org = found.ok_or_else(|| format!("no organisation {organisation:?} (a slug or an id)"))?;
    let started = std::time::Instant::now();
    let n = jalon_store::portfolio::rebuild(store.db(), org.id)
        .await
        .map_err(|e| format!("the rebuild failed (nothing was changed): {e}"))?;
    println!(
        "{n} project(s) of {} ({}) recomputed in {:.1} s",
        org.slug,
        org.id,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    // A client of a running server: no configuration to read.
    let cli = match cli.command {
        Command::Import {
            what: ImportCommand::Costs(args),
        } => return import_costs(args).await,
        command => Cli { command, ..cli },
    };
    // Read apart from the rest, so that an invalid configuration is still
    // reported in the configured format.
    let format = config::log_format(cli.config.as_deref(), overrides(&cli));
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            // A JSON line shaped as the log's when JSON logging is configured.
            eprintln!("{}", telemetry::fatal_line(format, &message));
            ExitCode::FAILURE
        }
    }
}
