//! The connection pools' state on `/metrics`, read from the pools at each scrape:
//! `db_pool_connections{service,state="idle"|"busy"}` and `db_pool_max_connections{service}`.
//! A pool whose busy connections stay at its maximum makes requests wait for a connection (and
//! fail with 503 after the acquire timeout): the saturation signal of a CRUD service.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::gauge::ConstGauge;

use crate::Db;

/// The pools of the services in this process, by service name.
#[derive(Debug)]
pub struct PoolMetrics {
    pools: Vec<(&'static str, Db)>,
}

impl PoolMetrics {
    pub fn new(pools: Vec<(&'static str, Db)>) -> Self {
        PoolMetrics { pools }
    }
}

impl Collector for PoolMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let kind = ConstGauge::new(0i64).metric_type();
        let mut family = encoder.encode_descriptor(
            "db_pool_connections",
            "Open connections of a service's database pool, idle or busy (lent to a request)",
            None,
            kind,
        )?;
        for (service, db) in &self.pools {
            let size = i64::from(db.pool.size());
            let idle = db.pool.num_idle() as i64;
            for (state, value) in [("idle", idle), ("busy", (size - idle).max(0))] {
                ConstGauge::new(value)
                    .encode(family.encode_family(&[("service", *service), ("state", state)])?)?;
            }
        }
        let mut family = encoder.encode_descriptor(
            "db_pool_max_connections",
            "The most connections a service's database pool opens",
            None,
            kind,
        )?;
        for (service, db) in &self.pools {
            ConstGauge::new(i64::from(db.pool.options().get_max_connections()))
                .encode(family.encode_family(&[("service", *service)])?)?;
        }
        Ok(())
    }
}
