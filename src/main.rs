//! `ecom`: one binary, one subcommand per component of the platform.

use clap::{Parser, Subcommand};

#[macro_use]
mod commands;

#[derive(Parser)]
#[command(
    name = "ecom",
    version,
    about = "Streaming analytics for event-driven e-commerce"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the platform in one process on embedded defaults: ingest, the stream engine and the
    /// analytics API on an embedded log and store, with demo traffic.
    Up(commands::up::Args),
    /// Offline mode: window an NDJSON file of activity events into NDJSON results.
    Window(commands::window::Args),
    /// Generate a realistic NDJSON activity stream.
    Gen(commands::generate::Args),
    /// The ingestion service: `POST /api/v1/events` to Kafka.
    Ingest(commands::ingest::Args),
    /// The windowing engine on Kafka: results to DynamoDB and a results topic.
    StreamEngine(commands::stream_engine::Args),
    /// The analytics API over DynamoDB, its live stream from the results topic.
    Analytics(commands::analytics::Args),
    /// The public entry: routes /api/v1 to the services, checking tokens and roles.
    Gateway(commands::gateway::Args),
    /// Identity on PostgreSQL: accounts, machine clients, tokens and their keys.
    Auth(commands::auth::Args),
    /// The product catalog on PostgreSQL.
    Catalog(commands::catalog::Args),
    /// Customers on PostgreSQL.
    Customers(commands::customers::Args),
    /// Orders on PostgreSQL, each carried through the order saga on Kafka; their PURCHASE
    /// events to the stream through an outbox.
    Orders(commands::orders::Args),
    /// Inventory on PostgreSQL: the one source of truth for stock, a participant of the saga.
    Inventory(commands::inventory::Args),
    /// Payments on PostgreSQL through a payment provider, a participant of the saga.
    Payments(commands::payments::Args),
    /// Import products from a CSV file or an S3 object through the gateway, with a report.
    Import(commands::import::Args),
    /// Apply the CRUD services' database migrations, then exit.
    Migrate(commands::migrate::Args),
    /// Ask a running service whether it is up (`GET /healthz`): a container's health check.
    Health(commands::health::Args),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Up(args) => commands::up::run(args),
        Command::Window(args) => commands::window::run(args),
        Command::Gen(args) => commands::generate::run(args),
        Command::Ingest(args) => commands::ingest::run(args),
        Command::StreamEngine(args) => commands::stream_engine::run(args),
        Command::Analytics(args) => commands::analytics::run(args),
        Command::Auth(args) => commands::auth::run(args),
        Command::Gateway(args) => commands::gateway::run(args),
        Command::Catalog(args) => commands::catalog::run(args),
        Command::Customers(args) => commands::customers::run(args),
        Command::Orders(args) => commands::orders::run(args),
        Command::Inventory(args) => commands::inventory::run(args),
        Command::Payments(args) => commands::payments::run(args),
        Command::Migrate(args) => commands::migrate::run(args),
        Command::Import(args) => commands::import::run(args),
        Command::Health(args) => return commands::health::run(args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            errln!("error: {e:#}");
            // A data directory in use is a refusal, not a usage or I/O error.
            if e.is::<commands::up::DataDirInUse>() {
                std::process::ExitCode::from(1)
            } else {
                std::process::ExitCode::from(2)
            }
        }
    }
}
