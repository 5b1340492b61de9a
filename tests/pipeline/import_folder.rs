//! `ecom up`'s import folder: a `.csv` dropped into `<data-dir>/import/` is imported through
//! the gateway as the machine client `importer` and moved with its report to `import/done/`,
//! or to `import/failed/` when its header is unusable; and `ecom import` beside `ecom up`
//! finds the importer's secret in the data directory.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use testkit::free_port;

use crate::support::*;

/// Waits for `path` to exist, then reads it as JSON.
async fn wait_for_json(path: &Path, timeout: Duration) -> Value {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(bytes) = std::fs::read(path) {
            return serde_json::from_slice(&bytes).expect("a JSON report");
        }
        assert!(
            Instant::now() < deadline,
            "{} did not appear within {timeout:?}",
            path.display()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_csv_dropped_into_the_import_folder_is_imported_and_moved() {
    let _serial = serial().await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let platform = up(&data, free_port(), &[]);
    platform.wait_ready().await;
    let import = data.join("import");
    assert!(import.is_dir(), "ecom up makes the import folder");

    // Written elsewhere and renamed in, as a careful uploader does; a second file whose
    // header lacks columns.
    let staged = dir.path().join("staged.csv");
    std::fs::write(
        &staged,
        "sku,name,price,currency,category,stock_quantity\r\n\
         FOLDER-1,Folder Mug,12.50,EUR,kitchen,3\r\n\
         FOLDER-2,Folder Cup,1.005,EUR,kitchen,3\r\n",
    )
    .unwrap();
    std::fs::rename(&staged, import.join("products.csv")).unwrap();
    std::fs::write(import.join("broken.csv"), "sku,name\nA,a\n").unwrap();

    let report = wait_for_json(
        &import.join("done/products.csv.report.json"),
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(report["status"], "completed", "{report:#}");
    assert_eq!(
        (report["created"].as_u64(), report["rejected"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(report["rejected_rows"][0]["line"], 3);
    assert!(import.join("done/products.csv").is_file());
    assert!(!import.join("products.csv").exists());
    let failed = wait_for_json(
        &import.join("failed/broken.csv.report.json"),
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(failed["status"], "failed");
    assert!(
        failed["error"]
            .as_str()
            .unwrap()
            .contains("no column price")
    );
    assert!(import.join("failed/broken.csv").is_file());

    // The product is in the catalog, read through the gateway.
    let products: Value = reqwest::get(format!("{}/api/v1/products?q=Folder", platform.url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let items = products["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{products}");
    assert_eq!(items[0]["price"]["amount"], 1250);

    // `ecom import` beside it, with no secret given: the data directory's is used; the same
    // file again changes nothing.
    let output = Command::new(env!("CARGO_BIN_EXE_ecom"))
        .arg("import")
        .arg(import.join("done/products.csv"))
        .arg("--data-dir")
        .arg(&data)
        .env("PRODUCT_API_URL", platform.url())
        .env_remove("IMPORT_CLIENT_SECRET")
        .env_remove("IMPORT_CLIENT_SECRET_ARN")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let again: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        (again["created"].as_u64(), again["unchanged"].as_u64()),
        (Some(0), Some(1))
    );
}
