//! The process's own CPU, memory and file descriptors on `/metrics`, under the names every
//! Prometheus client library uses (`process_cpu_seconds_total`, `process_resident_memory_bytes`,
//! ...), read from `/proc/self` at each scrape: so that `ecom up` on a laptop, and a pod whose
//! cAdvisor series are out of reach, show their own saturation. Elsewhere than Linux it shows
//! nothing.

use std::time::{SystemTime, UNIX_EPOCH};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

/// `/proc/[pid]/stat` counts CPU time in clock ticks of `USER_HZ`, 100 on every Linux target.
const TICKS_PER_SECOND: f64 = 100.0;

/// Reads the process's figures at each scrape.
#[derive(Debug)]
pub struct ProcessMetrics {
    started: f64,
}

impl Default for ProcessMetrics {
    /// The process's start from `/proc` (boot time plus its start in ticks since boot), or
    /// else now.
    fn default() -> Self {
        let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
        let system = std::fs::read_to_string("/proc/stat").unwrap_or_default();
        ProcessMetrics {
            started: start_time(&stat, &system).unwrap_or_else(|| {
                SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0.0, |d| d.as_secs_f64())
            }),
        }
    }
}

/// Field 22 of `/proc/self/stat` (the start, in ticks after boot) plus `btime` of `/proc/stat`
/// (the boot, in seconds since the epoch).
fn start_time(stat: &str, system: &str) -> Option<f64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let ticks: f64 = rest.split_whitespace().nth(19)?.parse().ok()?;
    let boot: f64 = system
        .lines()
        .find_map(|line| line.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    Some(boot + ticks / TICKS_PER_SECOND)
}

/// What `/proc/self` says now; `None` where it cannot be read.
#[derive(Debug, Default, PartialEq)]
struct Sample {
    cpu_seconds: Option<f64>,
    resident_bytes: Option<f64>,
    virtual_bytes: Option<f64>,
    threads: Option<f64>,
    open_fds: Option<f64>,
    max_fds: Option<f64>,
}

impl Sample {
    fn read() -> Sample {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
        let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
        Sample {
            cpu_seconds: cpu_seconds(&stat),
            resident_bytes: status_kib(&status, "VmRSS:").map(|k| k * 1024.0),
            virtual_bytes: status_kib(&status, "VmSize:").map(|k| k * 1024.0),
            threads: status_kib(&status, "Threads:"),
            open_fds: std::fs::read_dir("/proc/self/fd")
                .ok()
                .map(|entries| entries.count() as f64),
            max_fds: max_open_files(&limits),
        }
    }
}

/// User plus system time, from fields 14 and 15 of `/proc/self/stat` (counted after the
/// command's name, which is in parentheses and may hold spaces).
fn cpu_seconds(stat: &str) -> Option<f64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let user: f64 = fields.next()?.parse().ok()?;
    let system: f64 = fields.next()?.parse().ok()?;
    Some((user + system) / TICKS_PER_SECOND)
}

/// The number after `key` in `/proc/self/status` (`VmRSS:   1234 kB`).
fn status_kib(status: &str, key: &str) -> Option<f64> {
    status
        .lines()
        .find_map(|line| line.strip_prefix(key))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The soft limit of `Max open files` in `/proc/self/limits`.
fn max_open_files(limits: &str) -> Option<f64> {
    limits
        .lines()
        .find_map(|line| line.strip_prefix("Max open files"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

impl Collector for ProcessMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let sample = Sample::read();
        if let Some(cpu) = sample.cpu_seconds {
            let counter = ConstCounter::new(cpu);
            counter.encode(encoder.encode_descriptor(
                "process_cpu_seconds",
                "User and system CPU time spent, in seconds",
                None,
                counter.metric_type(),
            )?)?;
        }
        for (name, help, value) in [
            (
                "process_resident_memory_bytes",
                "Resident memory size in bytes",
                sample.resident_bytes,
            ),
            (
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes",
                sample.virtual_bytes,
            ),
            ("process_threads", "Threads of the process", sample.threads),
            ("process_open_fds", "Open file descriptors", sample.open_fds),
            (
                "process_max_fds",
                "The most file descriptors the process may open",
                sample.max_fds,
            ),
            (
                "process_start_time_seconds",
                "When the process started, in seconds since the Unix epoch",
                Some(self.started),
            ),
        ] {
            if let Some(value) = value {
                let gauge = ConstGauge::new(value);
                gauge.encode(encoder.encode_descriptor(
                    name,
                    help,
                    None,
                    gauge.metric_type(),
                )?)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_proc_formats() {
        // A command name with spaces and parentheses must not shift the fields.
        let stat = "4242 (my (odd) name) S 1 4242 4242 0 -1 4194560 500 0 0 0 250 75 0 0 20 0 8 0";
        assert_eq!(cpu_seconds(stat), Some(3.25));
        assert_eq!(cpu_seconds("garbage"), None);
        // Field 22: 12345 ticks after a boot at 1,700,000,000.
        let stat =
            "4242 (ecom) S 1 4242 4242 0 -1 4194560 500 0 0 0 250 75 0 0 20 0 8 0 12345 1000";
        assert_eq!(
            start_time(stat, "cpu 1 2 3\nbtime 1700000000\n"),
            Some(1_700_000_123.45)
        );
        assert_eq!(start_time(stat, "cpu 1 2 3\n"), None);
        let status = "Name:\tecom\nVmSize:\t  20480 kB\nVmRSS:\t    1024 kB\nThreads:\t7\n";
        assert_eq!(status_kib(status, "VmRSS:"), Some(1024.0));
        assert_eq!(status_kib(status, "Threads:"), Some(7.0));
        assert_eq!(status_kib(status, "VmSwap:"), None);
        let limits = "Limit                     Soft Limit           Hard Limit           Units\n\
                      Max open files            1024                 524288               files\n";
        assert_eq!(max_open_files(limits), Some(1024.0));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn reads_this_process() {
        let sample = Sample::read();
        assert!(sample.cpu_seconds.is_some());
        assert!(sample.resident_bytes.unwrap() > 1_000_000.0);
        assert!(sample.threads.unwrap() >= 1.0);
        assert!(sample.open_fds.unwrap() >= 3.0);
    }
}
