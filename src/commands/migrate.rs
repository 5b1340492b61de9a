//! `ecom migrate`: applies the CRUD services' embedded migrations, then exits.

use service_db::Migrations;

use super::Database;

/// The services whose schemas `ecom migrate` applies.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Service {
    Auth,
    Catalog,
    Customers,
    Orders,
    Inventory,
    Payments,
    All,
}

#[derive(clap::Args)]
pub struct Args {
    /// Whose schema to migrate.
    #[arg(long, value_enum, default_value_t = Service::All)]
    service: Service,
    #[command(flatten)]
    db: Database,
}

/// Applies the migrations of one service's schema, or of all, and exits.
pub fn run(args: Args) -> anyhow::Result<()> {
    let _telemetry = service_common::telemetry::init("migrate")?;
    let all: [(Service, &'static str, &Migrations); 7] = [
        (Service::Auth, auth::SCHEMA, &auth::MIGRATIONS),
        (Service::Catalog, catalog::SCHEMA, &catalog::MIGRATIONS),
        (
            Service::Customers,
            customers::SCHEMA,
            &customers::MIGRATIONS,
        ),
        (Service::Orders, orders::SCHEMA, &orders::MIGRATIONS),
        (
            Service::Inventory,
            inventory::SCHEMA,
            &inventory::MIGRATIONS,
        ),
        (Service::Payments, payments::SCHEMA, &payments::MIGRATIONS),
        (
            Service::Payments,
            payments::sandbox::SANDBOX_SCHEMA,
            &payments::sandbox::SANDBOX_MIGRATIONS,
        ),
    ];
    tokio::runtime::Runtime::new()?.block_on(async {
        for (service, schema, migrations) in all {
            if args.service == Service::All || args.service == service {
                let db = args.db.open(schema, migrations).await?;
                db.close().await;
                outln!("{schema}: migrated");
            }
        }
        Ok(())
    })
}
