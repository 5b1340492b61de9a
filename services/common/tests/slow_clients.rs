//! The server's limits against slow and stalled clients, on a real socket.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use prometheus_client::registry::Registry;
use service_common::{Limits, Ops, serve_with};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn start(
    limits: Limits,
) -> (
    String,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<std::io::Result<()>>,
) {
    let router = Router::new().route("/hello", get(|| async { "hello" }));
    let ops = Ops::new(Registry::default(), Arc::new(|| Box::pin(async { Ok(()) })));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (addr, server) = serve_with("127.0.0.1:0".parse().unwrap(), router, ops, limits, async {
        let _ = stopped.await;
    })
    .await
    .expect("bind");
    (addr.to_string(), stop, tokio::spawn(server))
}

const LIMITS: Limits = Limits {
    header_read_timeout: Duration::from_millis(500),
    max_connections: 4,
    drain_timeout: Duration::from_secs(2),
};

async fn get_hello(addr: &str) -> String {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream
        .write_all(b"GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.expect("read");
    answer
}

#[tokio::test]
async fn a_half_sent_request_is_closed_after_the_header_timeout() {
    let (addr, _stop, _server) = start(LIMITS).await;
    let mut stream = TcpStream::connect(&addr).await.expect("connect");
    stream
        .write_all(b"GET /hello HTTP/1.1\r\nHo")
        .await
        .expect("write");
    let started = Instant::now();
    let mut rest = Vec::new();
    // Closed (cleanly or reset), with at most an error status; never left open.
    let _closed = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut rest))
        .await
        .expect("the server closes the connection");
    assert!(
        started.elapsed() >= Duration::from_millis(400),
        "{:?}",
        started.elapsed()
    );
    let rest = String::from_utf8_lossy(&rest);
    assert!(
        rest.is_empty() || rest.starts_with("HTTP/1.1 408"),
        "{rest}"
    );
}

#[tokio::test]
async fn idle_connections_beyond_the_bound_wait_and_never_starve_the_server() {
    let (addr, _stop, _server) = start(LIMITS).await;
    // Twice the bound of connections that send nothing.
    let mut idle = Vec::new();
    for _ in 0..8 {
        idle.push(TcpStream::connect(&addr).await.expect("connect"));
    }
    // A real request still gets through: the idle ones time out and free their slots.
    let started = Instant::now();
    let answer = tokio::time::timeout(Duration::from_secs(10), get_hello(&addr))
        .await
        .expect("served within the timeouts");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("hello"), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(5));
    drop(idle);
}

#[tokio::test]
async fn shutdown_finishes_even_with_a_stalled_connection_open() {
    let (addr, stop, server) = start(Limits {
        header_read_timeout: Duration::from_secs(60),
        ..LIMITS
    })
    .await;
    let mut stalled = TcpStream::connect(&addr).await.expect("connect");
    stalled
        .write_all(b"GET /hello HTTP/1.1\r\n")
        .await
        .expect("write");
    assert!(get_hello(&addr).await.starts_with("HTTP/1.1 200"));
    let started = Instant::now();
    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("the server stops")
        .expect("task")
        .expect("clean");
    assert!(started.elapsed() < Duration::from_secs(5));
}
