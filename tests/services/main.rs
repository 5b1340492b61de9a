//! The catalog, customers and orders services through HTTP, each test on SQLite and on a
//! fresh PostgreSQL database (`on_both_databases!`), against the apps their `build`
//! functions serve.

mod support;

mod auth_api;
mod catalog_api;
mod customers_api;
mod gateway_api;
mod gateway_limits;
mod import;
mod orders_api;
mod outbox;
mod saga;
