//! The HTTP server under every service: HTTP/1.1 on hyper, with the limits that keep slow and
//! stalled clients from holding it:
//!
//! - a request's headers must arrive within [`Limits::header_read_timeout`] (a connection that
//!   sends half a request and stops is closed), also between requests on a kept-alive
//!   connection;
//! - at most [`Limits::max_connections`] connections at once; past that, new ones wait in the
//!   listen backlog until one closes;
//! - on shutdown, no new connection is accepted, every connection finishes the request in
//!   flight (a long-lived response such as an event stream ends when its handler sees the
//!   shutdown or after [`Limits::drain_timeout`]).
//!
//! Request bodies are read by the handlers, each with its own time limit.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};

/// Limits of [`serve_with`].
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub header_read_timeout: Duration,
    pub max_connections: usize,
    /// How long shutdown waits for connections still open.
    pub drain_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_read_timeout: Duration::from_secs(10),
            max_connections: 4096,
            drain_timeout: Duration::from_secs(10),
        }
    }
}

/// Serves `app` on `listener` until `shutdown` resolves, then drains the connections.
pub(crate) async fn run(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let (stopping, stop_seen) = watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        // The peer's address, for handlers that ask (`ConnectInfo<SocketAddr>`).
        let service = TowerToHyperService::new(
            app.clone()
                .layer(axum::Extension(axum::extract::ConnectInfo(peer))),
        );
        let mut stop_seen = stop_seen.clone();
        tokio::spawn(async move {
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_read_timeout)
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades();
            tokio::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => {}
                _ = stop_seen.changed() => {
                    connection.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(limits.drain_timeout, connection).await;
                }
            }
            drop(slot);
        });
    }
    let _ = stopping.send(true);
    // Every connection holds a slot until it is done.
    let all = u32::try_from(limits.max_connections.max(1)).unwrap_or(u32::MAX);
    let _ = tokio::time::timeout(
        limits.drain_timeout + Duration::from_secs(1),
        slots.acquire_many(all),
    )
    .await;
    Ok(())
}
