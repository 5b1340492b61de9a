//! `ecom health`: asks a running ecom process whether it is up (`GET /healthz`), for container
//! health checks in an image that carries nothing but the binary (no curl, no shell).
//! Exits 0 on a 200 answer within the timeout, 1 otherwise, saying why (Docker reads 1 as
//! unhealthy and reserves 2).

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use anyhow::{Context, bail};

use super::parse_duration;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The URL to ask (plain HTTP). Default: `/healthz` on the port of `ECOM_ADDR`, on this
    /// host: the service in the same container.
    #[arg(long)]
    url: Option<String>,
    /// The process's own address, for the default URL.
    #[arg(long, env = "ECOM_ADDR", default_value = "127.0.0.1:8080")]
    addr: String,
    /// How long to wait for the answer.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    timeout: Duration,
}

pub fn run(args: Args) -> std::process::ExitCode {
    match probe(args) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("unhealthy: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn probe(args: Args) -> anyhow::Result<()> {
    let url = match args.url {
        Some(url) => url,
        None => {
            let port = args
                .addr
                .rsplit(':')
                .next()
                .context("ECOM_ADDR has no port")?;
            format!("http://127.0.0.1:{port}/healthz")
        }
    };
    let status = get(&url, args.timeout).with_context(|| format!("GET {url}"))?;
    if status != 200 {
        bail!("GET {url} answered {status}");
    }
    Ok(())
}

/// The status code of `GET url` (`http://host:port/path`).
fn get(url: &str, timeout: Duration) -> anyhow::Result<u16> {
    let rest = url
        .strip_prefix("http://")
        .context("only http:// URLs are probed")?;
    let (authority, path) = rest
        .split_once('/')
        .map_or((rest, "/".to_owned()), |(a, p)| (a, format!("/{p}")));
    let address = authority
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve {authority}"))?
        .next()
        .with_context(|| format!("{authority} resolves to nothing"))?;
    let mut stream = TcpStream::connect_timeout(&address, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n"
    )?;
    // The status line is all that is needed: `HTTP/1.1 200 OK`.
    let mut head = [0u8; 64];
    let mut read = 0;
    while read < 12 {
        let n = stream.read(&mut head[read..])?;
        if n == 0 {
            break;
        }
        read += n;
    }
    let line = std::str::from_utf8(&head[..read]).unwrap_or_default();
    line.split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .with_context(|| format!("not an HTTP answer: {line:?}"))
}
