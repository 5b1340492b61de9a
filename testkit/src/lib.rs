//! Real servers for the integration tests, each started as its own process on a free loopback
//! port and killed when dropped, so that tests never share a broker they may stop:
//!
//! - [`Broker`]: tansu 0.6.0, a Kafka-protocol broker, in-memory storage;
//! - [`Moto`]: moto's server, a DynamoDB and S3 endpoint;
//! - [`Postgres`]: a throwaway PostgreSQL 15 cluster (`initdb` + `pg_ctl`), a fresh database
//!   per test;
//! - [`Redis`]: a Redis 7 server (Debian's `redis-server`), nothing persisted.
//!
//! Beside them, what several suites build the same way: a DynamoDB client of a moto server
//! ([`Moto::dynamodb_client`], feature `dynamodb`) and a window result
//! ([`window_result`]).
//!
//! `scripts/servers.sh install` puts them under `target/servers/` or installs the Debian
//! packages (what `scripts/test.sh` runs first). A test that needs a server and cannot find it fails, saying how to get it:
//! it never passes without the server.

use std::io::{BufRead, BufReader, Read};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// Where `scripts/servers.sh install` puts the servers.
fn servers_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/servers")
}

fn find(env: &str, default: PathBuf) -> PathBuf {
    let path = std::env::var_os(env).map_or(default, PathBuf::from);
    assert!(
        path.exists(),
        "{} not found: run `scripts/servers.sh install` (or `scripts/test.sh`), or set {env}",
        path.display()
    );
    path
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

fn wait_for_port(port: u16, child: &mut Child, what: &str, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    loop {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            let mut err = String::new();
            if let Some(stderr) = child.stderr.as_mut() {
                let _ = stderr.read_to_string(&mut err);
            }
            panic!("{what} exited with {status} before listening: {err}");
        }
        assert!(
            Instant::now() < deadline,
            "{what} did not listen on {port} within {timeout:?}"
        );
        thread::sleep(Duration::from_millis(50));
    }
}

/// Passes a child's output to the test's output (shown when a test fails), line by line.
fn forward(child: &mut Child, name: &'static str) {
    if let Some(stderr) = child.stderr.take() {
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("[{name}] {line}");
            }
        });
    }
    if let Some(stdout) = child.stdout.take() {
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                eprintln!("[{name}] {line}");
            }
        });
    }
}

/// A tansu broker on a free loopback port.
pub struct Broker {
    child: Option<Child>,
    port: u16,
    binary: PathBuf,
}

impl Broker {
    pub fn start() -> Broker {
        let binary = find("ECOM_TANSU_BIN", servers_dir().join("bin/tansu"));
        let mut broker = Broker {
            child: None,
            port: free_port(),
            binary,
        };
        broker.spawn();
        broker
    }

    fn spawn(&mut self) {
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let mut child = Command::new(&self.binary)
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .args(["--storage-engine", "memory://tansu/"])
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.binary.display()));
        wait_for_port(self.port, &mut child, "tansu", Duration::from_secs(20));
        forward(&mut child, "tansu");
        self.child = Some(child);
    }

    /// `host:port`, for `bootstrap.servers`.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Creates a topic (the broker does not create topics on first use).
    pub fn create_topic(&self, name: &str, partitions: u32) {
        let status = Command::new(&self.binary)
            .args([
                "topic",
                "create",
                name,
                "--partitions",
                &partitions.to_string(),
            ])
            .args(["--broker", &format!("tcp://{}", self.bootstrap())])
            .stdout(Stdio::null())
            .status()
            .expect("tansu topic create runs");
        assert!(
            status.success(),
            "tansu topic create {name} failed: {status}"
        );
    }

    /// Freezes the broker (SIGSTOP): connections stay open and nothing answers, as with a
    /// broker that hangs or a network that drops everything. Its data is kept.
    pub fn freeze(&self) {
        self.signal("STOP");
    }

    /// Undoes [`Broker::freeze`].
    pub fn thaw(&self) {
        self.signal("CONT");
    }

    fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().expect("broker running").id();
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &pid.to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -{signal} {pid} failed");
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-CONT", &child.id().to_string()])
                .status();
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A moto server (DynamoDB, S3) on a free loopback port.
pub struct Moto {
    child: Child,
    port: u16,
}

impl Moto {
    pub fn start() -> Moto {
        let binary = find("ECOM_MOTO_BIN", servers_dir().join("venv/bin/moto_server"));
        let port = free_port();
        let mut child = Command::new(&binary)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        wait_for_port(port, &mut child, "moto", Duration::from_secs(60));
        forward(&mut child, "moto");
        Moto { child, port }
    }

    /// The endpoint URL, for `AWS_ENDPOINT_URL`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// A DynamoDB client of this endpoint: region `us-east-1`, static test credentials.
    #[cfg(feature = "dynamodb")]
    pub fn dynamodb_client(&self) -> aws_sdk_dynamodb::Client {
        let config = aws_sdk_dynamodb::Config::builder()
            .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
            .endpoint_url(self.endpoint())
            .region(aws_sdk_dynamodb::config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
                "test", "test", None, None, "test",
            ))
            .build();
        aws_sdk_dynamodb::Client::from_conf(config)
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A Redis server on a free loopback port that keeps nothing on disk; [`Redis::kill`] and
/// [`Redis::restart`] for tests of what happens when it goes away.
pub struct Redis {
    child: Option<Child>,
    port: u16,
}

impl Redis {
    pub fn start() -> Redis {
        let mut redis = Redis {
            child: None,
            port: free_port(),
        };
        redis.restart();
        redis
    }

    /// Starts it again on the same port (empty) after [`Redis::kill`].
    pub fn restart(&mut self) {
        self.kill();
        let binary = find("ECOM_REDIS_BIN", PathBuf::from("/usr/bin/redis-server"));
        let mut child = Command::new(&binary)
            .args([
                "--bind",
                "127.0.0.1",
                "--port",
                &self.port.to_string(),
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        wait_for_port(self.port, &mut child, "redis", Duration::from_secs(30));
        // Its log says nothing a test needs; draining it keeps the pipe from filling.
        for out in [
            child
                .stdout
                .take()
                .map(|o| Box::new(o) as Box<dyn Read + Send>),
            child
                .stderr
                .take()
                .map(|e| Box::new(e) as Box<dyn Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            thread::spawn(move || {
                let _ = std::io::copy(&mut { out }, &mut std::io::sink());
            });
        }
        self.child = Some(child);
    }

    /// `kill -9`.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A throwaway PostgreSQL cluster on a free loopback port, in a temporary directory, stopped
/// and removed when dropped or, for [`Postgres::shared`], when the test process exits (a
/// watchdog process waits for the test's end of a pipe to close).
///
/// Uses the binaries of `ECOM_PG_BIN` or `/usr/lib/postgresql/15/bin` (Debian's
/// `postgresql-15`, which `scripts/servers.sh install` installs when missing). As root, the
/// cluster runs as the `postgres` user (initdb refuses root).
pub struct Postgres {
    port: u16,
    bin: PathBuf,
    tls: Option<Tls>,
    /// Stops the cluster once its stdin closes.
    watchdog: Child,
    databases: std::sync::atomic::AtomicU32,
}

impl Postgres {
    /// One cluster for the whole test binary.
    pub fn shared() -> &'static Postgres {
        static SHARED: std::sync::OnceLock<Postgres> = std::sync::OnceLock::new();
        SHARED.get_or_init(Postgres::start)
    }

    pub fn start() -> Postgres {
        Postgres::start_with(None)
    }

    /// A cluster that admits TLS connections only (as RDS with `rds.force_ssl`), its
    /// certificate for `127.0.0.1` signed by a CA made for it: the CA's PEM file is
    /// [`Postgres::ca`]. A connection without TLS is refused by `pg_hba.conf`.
    pub fn start_tls() -> Postgres {
        let dir = std::env::temp_dir().join(format!(
            "ecom-pg-tls-{}-{}",
            std::process::id(),
            free_port()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        let ca = certificate_authority(&dir, "ecom test CA");
        server_certificate(&dir, &ca, "127.0.0.1");
        Postgres::start_with(Some(Tls { dir, ca }))
    }

    /// The CA that signed a [`Postgres::start_tls`] cluster's certificate.
    pub fn ca(&self) -> Option<&Path> {
        self.tls.as_ref().map(|t| t.ca.as_path())
    }

    fn start_with(tls: Option<Tls>) -> Postgres {
        let bin = find("ECOM_PG_BIN", PathBuf::from("/usr/lib/postgresql/15/bin"));
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("ecom-pg-{}-{port}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        let root = Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| o.stdout.starts_with(b"0\n"));
        let as_owner = |program: PathBuf| {
            if root {
                let mut command = Command::new("runuser");
                command.args(["-u", "postgres", "--"]).arg(program);
                command
            } else {
                Command::new(program)
            }
        };
        if root {
            let status = Command::new("chown")
                .args(["postgres:postgres"])
                .arg(&dir)
                .status()
                .expect("chown runs");
            assert!(
                status.success(),
                "cannot give {} to postgres",
                dir.display()
            );
        }
        let data = dir.join("data");
        let out = as_owner(bin.join("initdb"))
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                "ecom",
                "-A",
                "trust",
                "--no-sync",
                "--locale=C",
                "-E",
                "UTF8",
            ])
            .output()
            .expect("initdb runs");
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut options = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c max_connections=400 \
             -c fsync=off -c synchronous_commit=off -c full_page_writes=off",
            dir.display()
        );
        if let Some(tls) = &tls {
            // The key must belong to the server's user and be private to it.
            let key = data.join("server.key");
            std::fs::copy(tls.dir.join("server.key"), &key).expect("the server key is copied");
            std::fs::copy(tls.dir.join("server.crt"), data.join("server.crt"))
                .expect("the server certificate is copied");
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600))
                .expect("the key's mode is set");
            if root {
                let status = Command::new("chown")
                    .args(["postgres:postgres"])
                    .arg(&key)
                    .arg(data.join("server.crt"))
                    .status()
                    .expect("chown runs");
                assert!(status.success(), "cannot give the server key to postgres");
            }
            // TCP only over TLS; the local socket stays open for nothing but pg_ctl.
            std::fs::write(
                data.join("pg_hba.conf"),
                "local all all trust\nhostssl all all 127.0.0.1/32 trust\n\
                 hostnossl all all 0.0.0.0/0 reject\n",
            )
            .expect("pg_hba.conf is written");
            options.push_str(" -c ssl=on -c ssl_cert_file=server.crt -c ssl_key_file=server.key");
        }
        let out = as_owner(bin.join("pg_ctl"))
            .arg("-D")
            .arg(&data)
            .arg("-l")
            .arg(dir.join("log"))
            .args(["-w", "-t", "60", "-o", &options, "start"])
            .output()
            .expect("pg_ctl runs");
        assert!(
            out.status.success(),
            "pg_ctl start failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            std::fs::read_to_string(dir.join("log")).unwrap_or_default()
        );
        // Stops and removes the cluster once the test process's end of stdin closes, however
        // the process ends.
        let script = format!(
            "read _; {}{} -D {} stop -m immediate >/dev/null 2>&1; rm -rf {}",
            if root { "runuser -u postgres -- " } else { "" },
            bin.join("pg_ctl").display(),
            data.display(),
            dir.display()
        );
        let watchdog = Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("sh runs");
        Postgres {
            port,
            bin,
            tls,
            watchdog,
            databases: std::sync::atomic::AtomicU32::new(0),
        }
    }

    /// A new empty database: its URL.
    pub fn database(&self) -> String {
        let n = self
            .databases
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!("test_{n}");
        let out = Command::new(self.bin.join("psql"))
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(["-U", "ecom", "-d", "postgres", "-q", "-c"])
            .arg(format!("CREATE DATABASE {name}"))
            .output()
            .expect("psql runs");
        assert!(
            out.status.success(),
            "CREATE DATABASE failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        format!("postgres://ecom@127.0.0.1:{}/{name}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        drop(self.watchdog.stdin.take());
        let _ = self.watchdog.wait();
        if let Some(tls) = &self.tls {
            let _ = std::fs::remove_dir_all(&tls.dir);
        }
    }
}

/// The certificates of a [`Postgres::start_tls`] cluster.
struct Tls {
    dir: PathBuf,
    ca: PathBuf,
}

/// A self-signed CA in `dir` (`<name>.crt`, `<name>.key`, spaces as dashes), made with the
/// `openssl` command: its certificate's path.
pub fn certificate_authority(dir: &Path, name: &str) -> PathBuf {
    let stem = name.replace(' ', "-");
    let (crt, key) = (
        dir.join(format!("{stem}.crt")),
        dir.join(format!("{stem}.key")),
    );
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-days",
        "2",
        "-subj",
        &format!("/CN={name}"),
        "-keyout",
        &path(&key),
        "-out",
        &path(&crt),
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    crt
}

/// `server.crt` and `server.key` in `dir` for the IP address `ip`, signed by the CA whose
/// certificate is `ca` (its key beside it).
fn server_certificate(dir: &Path, ca: &Path, ip: &str) {
    let (crt, key, csr) = (
        dir.join("server.crt"),
        dir.join("server.key"),
        dir.join("server.csr"),
    );
    openssl(&[
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-subj",
        &format!("/CN={ip}"),
        "-keyout",
        &path(&key),
        "-out",
        &path(&csr),
    ]);
    let extensions = dir.join("server.ext");
    std::fs::write(
        &extensions,
        format!("subjectAltName=IP:{ip}\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n"),
    )
    .expect("the extensions file is written");
    openssl(&[
        "x509",
        "-req",
        "-in",
        &path(&csr),
        "-CA",
        &path(ca),
        "-CAkey",
        &path(&ca.with_extension("key")),
        "-CAcreateserial",
        "-days",
        "2",
        "-out",
        &path(&crt),
        "-extfile",
        &path(&extensions),
    ]);
}

fn path(p: &Path) -> String {
    p.display().to_string()
}

fn openssl(args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl runs");
    assert!(
        out.status.success(),
        "openssl {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// An exact window result (not a HyperLogLog estimate) of `product` for the window starting
/// at `start` (UTC milliseconds).
pub fn window_result(
    product: &str,
    start: i64,
    users: u64,
    events: u64,
) -> stream_engine::WindowResult {
    stream_engine::WindowResult {
        product_id: product.into(),
        window_start_ms: start,
        unique_users: users,
        events,
        approximate: false,
    }
}

/// Reading the Prometheus text format, for benchmarks that report a service's own metrics.
pub mod prometheus {
    /// The value of the sample named exactly `name` (labels included), or 0.
    pub fn value(text: &str, name: &str) -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or(0.0)
    }

    /// Upper bounds of the buckets of histogram `name` that hold the `wanted` quantiles.
    pub fn quantiles(
        text: &str,
        name: &str,
        wanted: &[(&'static str, f64)],
    ) -> Vec<(&'static str, String)> {
        let mut buckets: Vec<(String, f64)> = text
            .lines()
            .filter_map(|l| {
                let rest = l.strip_prefix(name)?.strip_prefix("_bucket{le=\"")?;
                let (le, count) = rest.split_once("\"} ")?;
                Some((le.to_owned(), count.parse().ok()?))
            })
            .collect();
        buckets.sort_by(|a, b| a.1.total_cmp(&b.1));
        let total = buckets.last().map_or(0.0, |b| b.1);
        wanted
            .iter()
            .map(|(label, q)| {
                let bound = buckets
                    .iter()
                    .find(|(_, count)| *count >= q * total)
                    .map_or("-".to_owned(), |(le, _)| le.clone());
                (*label, bound)
            })
            .collect()
    }
}

/// Reading a topic of the embedded event log back, for assertions.
pub mod log {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::Duration;

    use event_log::embedded::EmbeddedLog;
    use event_log::{FixedStart, PartitionReader, ReadBatch, StartAt};

    /// Every record of `log` from the beginning, as (key, payload), partition by partition:
    /// read until three polls in a row find nothing new. The reader never commits, so it
    /// holds nothing back from retention.
    pub fn records(log: &EmbeddedLog) -> Vec<(Vec<u8>, Vec<u8>)> {
        static READERS: AtomicU64 = AtomicU64::new(0);
        let group = format!(
            "testkit-{}-{}",
            std::process::id(),
            READERS.fetch_add(1, Ordering::Relaxed)
        );
        let reader = log.reader(&group, Arc::new(FixedStart(StartAt::Beginning)));
        let mut out = Vec::new();
        let mut empty = 0;
        while empty < 3 {
            match reader.poll(1000, Duration::from_millis(30)).expect("read") {
                Some(batch) => {
                    let runs = batch.runs();
                    let before = out.len();
                    for (_, records) in runs {
                        out.extend(records.iter().map(|r| {
                            (
                                r.key.unwrap_or_default().to_vec(),
                                r.payload.unwrap_or_default().to_vec(),
                            )
                        }));
                    }
                    if out.len() == before {
                        empty += 1;
                    }
                }
                None => empty += 1,
            }
        }
        reader.close();
        out
    }

    /// The payloads of [`records`].
    pub fn payloads(log: &EmbeddedLog) -> Vec<Vec<u8>> {
        records(log)
            .into_iter()
            .map(|(_, payload)| payload)
            .collect()
    }
}
