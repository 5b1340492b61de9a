//! Demo traffic for `ecom up`: activity events with live event times (a little disorder, as
//! from real clients), POSTed to ingest like any client would.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Zipf};
use stream_engine::core::time::write_rfc3339_ms;

const PRODUCTS: u64 = 200;
const USERS: u64 = 5_000;
const BATCHES_PER_SECOND: u32 = 5;
const EVENT_TYPES: [(&str, u32); 4] = [
    ("VIEW_PRODUCT", 80),
    ("ADD_TO_CART", 12),
    ("PURCHASE", 5),
    ("REMOVE_FROM_CART", 3),
];

/// Posts about `rate` events a second to `url` until aborted.
pub async fn run(url: String, rate: u32) {
    let client = reqwest::Client::new();
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let mut rng = SmallRng::seed_from_u64(seed);
    let Ok(products) = Zipf::new(PRODUCTS as f64, 1.1) else {
        return;
    };
    let per_batch = (rate / BATCHES_PER_SECOND).max(1) as usize;
    let mut tick = tokio::time::interval(Duration::from_secs(1) / BATCHES_PER_SECOND);
    let mut warned = false;
    loop {
        tick.tick().await;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let mut body = String::with_capacity(per_batch * 140);
        for _ in 0..per_batch {
            let product = products.sample(&mut rng) as u64;
            let user = rng.random_range(1..=USERS);
            let mut pick = rng.random_range(0..100);
            let event_type = EVENT_TYPES
                .iter()
                .find(|(_, weight)| {
                    let hit = pick < *weight;
                    pick = pick.saturating_sub(*weight);
                    hit
                })
                .map_or("VIEW_PRODUCT", |(t, _)| t);
            // Up to 3 s behind the clock: within the default out-of-orderness.
            let ts = now - rng.random_range(0..3_000);
            body.push_str(&format!(
                r#"{{"user_id":"u{user:05}","product_id":"p{product:03}","event_type":"{event_type}","timestamp":""#
            ));
            write_rfc3339_ms(ts, &mut body);
            body.push_str("\"}\n");
        }
        let sent = client
            .post(&url)
            .header("content-type", "application/x-ndjson")
            .body(body)
            .timeout(Duration::from_secs(10))
            .send()
            .await;
        match sent {
            Ok(r) if r.status().is_success() => warned = false,
            Ok(r) if !warned => {
                warned = true;
                tracing::warn!(status = %r.status(), "demo traffic refused");
            }
            Err(e) if !warned => {
                warned = true;
                tracing::warn!(error = %e, "demo traffic failed");
            }
            _ => {}
        }
    }
}
