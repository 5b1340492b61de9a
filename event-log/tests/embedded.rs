//! The embedded event log on a real file system: appends and reads, offsets, restarts, torn
//! tails, segment rolls, retention, concurrent appenders, live tails.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use event_log::embedded::{EmbeddedLog, LogConfig, OpenError};
use event_log::{
    AppendError, Bytes, EventLog, PartitionListener, PartitionReader, ReadBatch, Record, StartAt,
    partition_for,
};

/// Starts every partition where told (the beginning by default) and remembers what it heard.
#[derive(Default)]
struct Listener {
    starts: BTreeMap<u32, StartAt>,
    assigned: Mutex<Vec<u32>>,
    revoked: Mutex<Vec<u32>>,
}

impl PartitionListener for Listener {
    fn assigned(&self, partitions: &[u32]) -> Option<Vec<(u32, StartAt)>> {
        self.assigned.lock().unwrap().extend_from_slice(partitions);
        Some(
            partitions
                .iter()
                .map(|&p| (p, *self.starts.get(&p).unwrap_or(&StartAt::Beginning)))
                .collect(),
        )
    }

    fn revoked(&self, partitions: &[u32]) {
        self.revoked.lock().unwrap().extend_from_slice(partitions);
    }
}

fn config(partitions: u32) -> LogConfig {
    LogConfig {
        partitions,
        ..LogConfig::default()
    }
}

fn record(key: &str, value: &str) -> Record {
    Record::new(
        Bytes::copy_from_slice(key.as_bytes()),
        Bytes::copy_from_slice(value.as_bytes()),
    )
}

fn records(n: usize, tag: &str) -> Vec<Record> {
    (0..n)
        .map(|i| record(&format!("p{}", i % 37), &format!("{tag}-{i}")))
        .collect()
}

/// Everything readable, per partition: (offset, key, value).
type Read = BTreeMap<u32, Vec<(u64, String, String)>>;

fn read_all(log: &EmbeddedLog, listener: Listener) -> Read {
    let reader = log.reader("test", Arc::new(listener));
    let mut out = Read::new();
    // The first poll assigns the partitions and reads nothing.
    assert!(reader.poll(1, Duration::ZERO).expect("poll").is_none());
    while let Some(batch) = reader.poll(1000, Duration::from_millis(50)).expect("poll") {
        for (p, recs) in batch.runs() {
            for r in recs {
                out.entry(p).or_default().push((
                    r.offset,
                    String::from_utf8(r.key.unwrap().to_vec()).unwrap(),
                    String::from_utf8(r.payload.unwrap().to_vec()).unwrap(),
                ));
            }
        }
    }
    reader.close();
    out
}

fn values(read: &Read) -> Vec<String> {
    let mut all: Vec<String> = read.values().flatten().map(|(_, _, v)| v.clone()).collect();
    all.sort();
    all
}

#[test]
fn appended_records_are_read_back_partitioned_by_key_with_dense_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let log = EmbeddedLog::open(dir.path(), config(4)).unwrap();
    log.append_blocking(records(500, "a")).unwrap();
    log.append_blocking(records(300, "b")).unwrap();
    let read = read_all(&log, Listener::default());
    let mut total = 0;
    for (p, recs) in &read {
        for (i, (offset, key, _)) in recs.iter().enumerate() {
            assert_eq!(*offset, i as u64, "offsets are dense from 0");
            assert_eq!(
                partition_for(key.as_bytes(), 4),
                *p,
                "{key} in the wrong partition"
            );
        }
        assert_eq!(log.bounds(*p), Some((0, recs.len() as u64)));
        total += recs.len();
    }
    assert_eq!(total, 800);
    // Within a partition, the order of appending.
    let p = partition_for(b"p5", 4);
    let of_p5: Vec<&str> = read[&p]
        .iter()
        .filter(|(_, k, _)| k == "p5")
        .map(|(_, _, v)| v.as_str())
        .collect();
    assert_eq!(of_p5.first(), Some(&"a-5"));
    assert_eq!(of_p5.last(), Some(&"b-264"));
}

#[test]
fn a_reader_resumes_at_the_offset_its_listener_gives() {
    let dir = tempfile::tempdir().unwrap();
    let log = EmbeddedLog::open(dir.path(), config(2)).unwrap();
    log.append_blocking(records(1000, "a")).unwrap();
    let all = read_all(&log, Listener::default());
    let listener = Listener {
        starts: BTreeMap::from([(0, StartAt::Offset(100)), (1, StartAt::End)]),
        ..Listener::default()
    };
    let read = read_all(&log, listener);
    assert_eq!(read[&0], all[&0][100..]);
    assert!(!read.contains_key(&1), "partition 1 starts at its end");
}

#[test]
fn the_listener_is_assigned_everything_on_the_first_poll_and_revoked_on_close() {
    let dir = tempfile::tempdir().unwrap();
    let log = EmbeddedLog::open(dir.path(), config(3)).unwrap();
    let listener = Arc::new(Listener::default());
    log.append_blocking(records(30, "a")).unwrap();
    let reader = log.reader("g", listener.clone());
    assert!(listener.assigned.lock().unwrap().is_empty());
    // The poll that assigns returns nothing (a caller drops what it read across an
    // assignment change); the next one reads from the start positions.
    let first = reader.poll(10, Duration::from_millis(10)).unwrap();
    assert!(first.is_none());
    assert_eq!(*listener.assigned.lock().unwrap(), [0, 1, 2]);
    let batch = reader
        .poll(100, Duration::from_millis(10))
        .unwrap()
        .expect("records");
    assert!(batch.runs().iter().all(|(_, r)| r[0].offset == 0));
    reader.close();
    assert_eq!(*listener.revoked.lock().unwrap(), [0, 1, 2]);
}

#[test]
fn everything_survives_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let before = {
        let log = EmbeddedLog::open(dir.path(), config(4)).unwrap();
        log.append_blocking(records(700, "a")).unwrap();
        read_all(&log, Listener::default())
    };
    let log = EmbeddedLog::open(dir.path(), config(4)).unwrap();
    assert_eq!(read_all(&log, Listener::default()), before);
    // Appends go on after the last offset.
    log.append_blocking(vec![record("p1", "after")]).unwrap();
    let p = partition_for(b"p1", 4);
    let after = read_all(&log, Listener::default());
    assert_eq!(
        after[&p].last().map(|(o, _, v)| (*o, v.as_str())),
        Some((before[&p].len() as u64, "after"))
    );
}

#[test]
fn the_partition_count_of_a_log_cannot_change() {
    let dir = tempfile::tempdir().unwrap();
    drop(EmbeddedLog::open(dir.path(), config(4)).unwrap());
    match EmbeddedLog::open(dir.path(), config(8)) {
        Err(OpenError::PartitionsChanged { found, wanted, .. }) => {
            assert_eq!((found, wanted), (4, 8));
        }
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("opened with another partition count"),
    }
}

#[test]
fn a_topic_directory_has_one_writer_until_every_handle_is_gone() {
    let dir = tempfile::tempdir().unwrap();
    let log = EmbeddedLog::open(dir.path(), config(2)).unwrap();
    let reader = log.reader("g", Arc::new(Listener::default()));
    log.append_blocking(vec![Record::new("k", "v")]).unwrap();
    let files = |dir: &Path| {
        let mut names: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        names
    };
    let before = files(dir.path());
    match EmbeddedLog::open(dir.path(), config(2)) {
        Err(OpenError::Locked(e)) => {
            let message = e.to_string();
            assert!(
                message.contains("is in use by an event log writer (pid "),
                "{message}"
            );
        }
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("a second writer opened the topic"),
    }
    assert_eq!(
        files(dir.path()),
        before,
        "the refused open touched the directory"
    );
    // The reader still holds the topic (it commits offsets), so the lock outlives the log.
    drop(log);
    assert!(matches!(
        EmbeddedLog::open(dir.path(), config(2)),
        Err(OpenError::Locked(_))
    ));
    drop(reader);
    let log = EmbeddedLog::open(dir.path(), config(2)).unwrap();
    assert_eq!(
        (0..2).map(|p| log.bounds(p).unwrap().1).sum::<u64>(),
        1,
        "the acknowledged record is still there"
    );
}

fn last_segment(partition_dir: &Path) -> std::path::PathBuf {
    let mut files: Vec<_> = std::fs::read_dir(partition_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    files.sort();
    files.pop().unwrap()
}

#[test]
fn a_torn_tail_is_cut_at_open_and_never_read() {
    for damage in [
        "cut mid-frame",
        "garbage appended",
        "a bit flipped in the last frame",
    ] {
        let dir = tempfile::tempdir().unwrap();
        let before = {
            let log = EmbeddedLog::open(dir.path(), config(1)).unwrap();
            log.append_blocking(records(100, "a")).unwrap();
            read_all(&log, Listener::default())
        };
        let segment = last_segment(&dir.path().join("0"));
        let len = std::fs::metadata(&segment).unwrap().len();
        match damage {
            "cut mid-frame" => {
                let file = std::fs::OpenOptions::new()
                    .write(true)
                    .open(&segment)
                    .unwrap();
                file.set_len(len - 3).unwrap();
            }
            "garbage appended" => {
                let mut file = std::fs::OpenOptions::new()
                    .append(true)
                    .open(&segment)
                    .unwrap();
                file.write_all(&[0x20, 0, 0, 0, 1, 2, 3, 4, 5, 6]).unwrap();
            }
            _ => {
                let mut bytes = std::fs::read(&segment).unwrap();
                let at = bytes.len() - 2;
                bytes[at] ^= 0x40;
                std::fs::write(&segment, bytes).unwrap();
            }
        }
        let log = EmbeddedLog::open(dir.path(), config(1)).unwrap();
        let read = read_all(&log, Listener::default());
        let kept = if damage == "garbage appended" {
            100
        } else {
            99
        };
        assert_eq!(read[&0], before[&0][..kept], "{damage}");
        // The log goes on from the cut, and what follows reads back whole.
        log.append_blocking(vec![record("k", "next")]).unwrap();
        let read = read_all(&log, Listener::default());
        assert_eq!(read[&0].last().unwrap().0, kept as u64, "{damage}");
        assert_eq!(read[&0].last().unwrap().2, "next", "{damage}");
    }
}

#[test]
fn damage_in_an_older_segment_is_an_error_not_a_tail() {
    let dir = tempfile::tempdir().unwrap();
    {
        let log = EmbeddedLog::open(
            dir.path(),
            LogConfig {
                segment_bytes: 2_000,
                ..config(1)
            },
        )
        .unwrap();
        for i in 0..60 {
            log.append_blocking(records(10, &format!("r{i}"))).unwrap();
        }
    }
    let mut files: Vec<_> = std::fs::read_dir(dir.path().join("0"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(files.len() > 2, "segments rolled");
    let first = &files[0];
    let mut bytes = std::fs::read(first).unwrap();
    bytes[20] ^= 0xff;
    std::fs::write(first, bytes).unwrap();
    assert!(matches!(
        EmbeddedLog::open(dir.path(), config(1)),
        Err(OpenError::Damaged { .. })
    ));
}

#[test]
fn reads_cross_segment_boundaries_from_any_offset() {
    let dir = tempfile::tempdir().unwrap();
    let log = EmbeddedLog::open(
        dir.path(),
        LogConfig {
            segment_bytes: 4_000,
            ..config(1)
        },
    )
    .unwrap();
    for i in 0..40 {
        log.append_blocking(records(25, &format!("r{i}"))).unwrap();
    }
    let all = read_all(&log, Listener::default());
    assert_eq!(all[&0].len(), 1000);
    assert!(
        all[&0]
            .iter()
            .enumerate()
            .all(|(i, (o, _, _))| *o == i as u64)
    );
    for start in [0, 1, 511, 512, 513, 777, 999, 1000] {
        let listener = Listener {
            starts: BTreeMap::from([(0, StartAt::Offset(start))]),
            ..Listener::default()
        };
        let read = read_all(&log, listener);
        let got = read.get(&0).cloned().unwrap_or_default();
        assert_eq!(got, all[&0][start as usize..], "from {start}");
    }
}

#[test]
fn retention_deletes_only_what_every_group_has_committed_past() {
    let dir = tempfile::tempdir().unwrap();
    let log = EmbeddedLog::open(
        dir.path(),
        LogConfig {
            segment_bytes: 2_000,
            retention_bytes: Some(1),
            retention_age: None,
            ..config(1)
        },
    )
    .unwrap();
    for i in 0..30 {
        log.append_blocking(records(10, &format!("r{i}"))).unwrap();
    }
    // Nothing committed yet: an input topic keeps everything.
    assert_eq!(log.enforce_retention(), 0);
    assert_eq!(log.bounds(0), Some((0, 300)));
    let reader = log.reader("engine", Arc::new(Listener::default()));
    reader.commit(&[(0, 150)], true);
    assert!(log.enforce_retention() > 0);
    let (first, end) = log.bounds(0).unwrap();
    assert!(first > 0 && first <= 150, "kept from {first}");
    assert_eq!(end, 300);
    // A second group that has committed less holds the rest.
    let other = log.reader("late-reader", Arc::new(Listener::default()));
    other.commit(&[(0, 160)], true);
    reader.commit(&[(0, 290)], true);
    log.enforce_retention();
    assert!(log.bounds(0).unwrap().0 <= 160);
    // The committed offsets survive a reopen (retention reads them back).
    drop((reader, other, log));
    let log = EmbeddedLog::open(dir.path(), config(1)).unwrap();
    let listener = Listener {
        starts: BTreeMap::from([(0, StartAt::Offset(200))]),
        ..Listener::default()
    };
    let read = read_all(&log, listener);
    assert_eq!(read[&0].first().map(|r| r.0), Some(200));
    assert_eq!(read[&0].len(), 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_are_all_durable_and_share_syncs() {
    let dir = tempfile::tempdir().unwrap();
    let log = EmbeddedLog::open(dir.path(), config(4)).unwrap();
    let tasks: Vec<_> = (0..64)
        .map(|t| {
            let log = log.clone();
            tokio::spawn(async move { log.append(records(50, &format!("t{t}"))).await })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().expect("acknowledged");
    }
    assert!(
        log.flushes() < 64,
        "64 concurrent appends took {} group commits",
        log.flushes()
    );
    let read = read_all(&log, Listener::default());
    let mut expected: Vec<String> = (0..64)
        .flat_map(|t| (0..50).map(move |i| format!("t{t}-{i}")))
        .collect();
    expected.sort();
    assert_eq!(values(&read), expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_refuses_appends_instead_of_growing() {
    let dir = tempfile::tempdir().unwrap();
    let log = EmbeddedLog::open(
        dir.path(),
        LogConfig {
            max_in_flight: 100,
            ..config(1)
        },
    )
    .unwrap();
    // One append larger than the limit still goes through when nothing else waits.
    log.append(records(500, "big")).await.unwrap();
    let mut refused = Vec::new();
    let mut accepted = vec!["big".to_owned()];
    for round in 0..20 {
        let tasks: Vec<_> = (0..20)
            .map(|t| {
                let log = log.clone();
                let tag = format!("r{round}t{t}");
                tokio::spawn(async move { (log.append(records(50, &tag)).await, tag) })
            })
            .collect();
        for task in tasks {
            match task.await.unwrap() {
                (Ok(()), tag) => accepted.push(tag),
                (Err(AppendError::QueueFull { limit, .. }), tag) => {
                    assert_eq!(limit, 100);
                    refused.push(tag);
                }
                (Err(e), _) => panic!("unexpected: {e}"),
            }
        }
        if !refused.is_empty() {
            break;
        }
    }
    assert!(
        !refused.is_empty(),
        "the queue limit never refused anything"
    );
    assert_eq!(log.in_flight(), 0);
    // What was refused was never written; what was acknowledged all was.
    let read = read_all(&log, Listener::default());
    let tags: std::collections::BTreeSet<String> = values(&read)
        .into_iter()
        .map(|v| v.rsplit_once('-').unwrap().0.to_owned())
        .collect();
    for tag in &refused {
        assert!(!tags.contains(tag), "{tag} was refused yet written");
    }
    for tag in &accepted {
        assert!(tags.contains(tag), "{tag} was acknowledged yet missing");
    }
}

#[test]
fn a_live_tail_sees_only_what_is_appended_after_it_started() {
    let dir = tempfile::tempdir().unwrap();
    let log = EmbeddedLog::open(dir.path(), config(2)).unwrap();
    log.append_blocking(records(100, "old")).unwrap();
    let listener = Listener {
        starts: BTreeMap::from([(0, StartAt::End), (1, StartAt::End)]),
        ..Listener::default()
    };
    let reader = log.reader("tail", Arc::new(listener));
    assert!(
        reader
            .poll(100, Duration::from_millis(20))
            .unwrap()
            .is_none()
    );
    let appender = {
        let log = log.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            log.append_blocking(records(3, "new")).unwrap();
        })
    };
    // The poll waits for the append rather than returning empty.
    let batch = reader
        .poll(100, Duration::from_secs(5))
        .unwrap()
        .expect("woken by the append");
    appender.join().unwrap();
    let mut got: Vec<String> = batch
        .runs()
        .into_iter()
        .flat_map(|(_, r)| {
            r.into_iter()
                .map(|r| String::from_utf8(r.payload.unwrap().to_vec()).unwrap())
        })
        .collect();
    while got.len() < 3 {
        let batch = reader
            .poll(100, Duration::from_secs(1))
            .unwrap()
            .expect("more");
        got.extend(batch.runs().into_iter().flat_map(|(_, r)| {
            r.into_iter()
                .map(|r| String::from_utf8(r.payload.unwrap().to_vec()).unwrap())
                .collect::<Vec<_>>()
        }));
    }
    got.sort();
    assert_eq!(got, ["new-0", "new-1", "new-2"]);
}

#[test]
fn a_record_over_the_frame_limit_is_refused_and_nothing_of_its_append_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let log = EmbeddedLog::open(dir.path(), config(1)).unwrap();
    let huge = Record::new(
        Bytes::from_static(b"k"),
        vec![b'x'; event_log::embedded::segment::MAX_BODY],
    );
    let refused = log.append_blocking(vec![record("k", "small"), huge]);
    assert!(
        matches!(refused, Err(AppendError::TooLarge { .. })),
        "{refused:?}"
    );
    assert_eq!(log.bounds(0), Some((0, 0)));
}

#[test]
fn damage_found_while_reading_is_an_error_not_a_stall() {
    let dir = tempfile::tempdir().unwrap();
    let log = EmbeddedLog::open(dir.path(), config(1)).unwrap();
    log.append_blocking(records(10, "a")).unwrap();
    // The length field of a frame in the middle, overwritten after the log checked it.
    let segment = last_segment(&dir.path().join("0"));
    let mut bytes = std::fs::read(&segment).unwrap();
    let second_frame = 8 + u32::from_le_bytes(bytes[..4].try_into().unwrap()) as usize;
    bytes[second_frame..second_frame + 4].copy_from_slice(&u32::MAX.to_le_bytes());
    std::fs::write(&segment, bytes).unwrap();
    let reader = log.reader("g", Arc::new(Listener::default()));
    assert!(reader.poll(100, Duration::ZERO).unwrap().is_none());
    let read = reader.poll(100, Duration::from_millis(10));
    assert!(
        matches!(&read, Err(e) if e.0.contains("damaged")),
        "{:?}",
        read.map(|b| b.is_some())
    );
}
