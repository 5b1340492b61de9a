//! The subcommands: each parses its flags and calls into a library.

pub mod generate;
pub mod ingest;
pub mod stream_engine;
pub mod up;
pub mod window;

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;

use anyhow::Context;

/// A duration flag such as `10s`, `1m30s` or `250ms`.
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{e} (examples: 10s, 1m, 500ms)"))
}

/// `-` is standard output, anything else a file created (or truncated).
pub fn create_output(path: &Path) -> anyhow::Result<Box<dyn Write>> {
    Ok(if path == Path::new("-") {
        Box::new(BufWriter::with_capacity(1 << 16, io::stdout().lock()))
    } else {
        let file =
            File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
        Box::new(BufWriter::with_capacity(1 << 16, file))
    })
}
