//! The dashboard in real browsers: headless Chromium and Firefox through their WebDrivers
//! (Debian's `chromium` + `chromium-driver` and `firefox-esr`, and geckodriver built from
//! crates.io by `scripts/servers.sh`), against `ecom up` with demo traffic.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

use crate::support::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Browser {
    Chromium,
    Firefox,
}

impl Browser {
    fn name(self) -> &'static str {
        match self {
            Browser::Chromium => "chromium",
            Browser::Firefox => "firefox",
        }
    }
}

/// A WebDriver server on a free port, killed when dropped.
struct Driver {
    child: Child,
    url: String,
    browser: Browser,
}

impl Driver {
    async fn start(browser: Browser) -> Driver {
        let servers = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/servers/bin");
        let (variable, default) = match browser {
            Browser::Chromium => ("ECOM_CHROMEDRIVER", "/usr/bin/chromedriver".into()),
            Browser::Firefox => (
                "ECOM_GECKODRIVER",
                servers.join("geckodriver").display().to_string(),
            ),
        };
        let binary = std::env::var(variable).unwrap_or(default);
        assert!(
            std::path::Path::new(&binary).exists(),
            "{binary} not found: run `scripts/servers.sh install`, or set {variable}"
        );
        let port = testkit::free_port();
        let child = Command::new(&binary)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{binary} starts: {e}"));
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        while reqwest::get(format!("{url}/status")).await.is_err() {
            assert!(Instant::now() < deadline, "{binary} never answered");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Driver {
            child,
            url,
            browser,
        }
    }

    async fn browser(&self) -> Client {
        let mut caps = serde_json::Map::new();
        match self.browser {
            Browser::Chromium => {
                caps.insert(
                    "goog:chromeOptions".into(),
                    json!({"args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                                    "--disable-dev-shm-usage", "--window-size=1280,1000"]}),
                );
                caps.insert("goog:loggingPrefs".into(), json!({"browser": "ALL"}));
            }
            Browser::Firefox => {
                let binary = std::env::var("ECOM_FIREFOX").unwrap_or("/usr/bin/firefox-esr".into());
                caps.insert(
                    "moz:firefoxOptions".into(),
                    json!({"binary": binary, "args": ["-headless", "-width=1280", "-height=1000"]}),
                );
            }
        }
        ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&self.url)
            .await
            .expect("a browser session")
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The browser's console since the last call (chromedriver's log endpoint).
#[derive(Debug)]
struct ConsoleLog;

impl fantoccini::wd::WebDriverCompatibleCommand for ConsoleLog {
    fn endpoint(
        &self,
        base: &url::Url,
        session: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base.join(&format!("session/{}/se/log", session.unwrap_or_default()))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (http::Method::POST, Some(r#"{"type":"browser"}"#.into()))
    }
}

async fn console_errors(browser: &Client) -> Vec<String> {
    let entries = browser
        .issue_cmd(ConsoleLog)
        .await
        .expect("the console log");
    entries
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["level"] == "SEVERE")
        .map(|e| e["message"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// Saves what the browser shows to `target/test-artifacts/<name>`.
async fn screenshot(browser: &Client, name: &str) {
    let png = browser.screenshot().await.expect("a screenshot");
    let artifacts = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    std::fs::write(artifacts.join(name), png).unwrap();
}

/// Runs `script` in the page until it returns something other than `null`.
async fn wait_for(browser: &Client, script: &str, timeout: Duration, what: &str) -> Value {
    let deadline = Instant::now() + timeout;
    loop {
        let value = browser
            .execute(script, vec![])
            .await
            .expect("the script runs");
        if !value.is_null() {
            return value;
        }
        assert!(Instant::now() < deadline, "{what}: not within {timeout:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

const SHOWN_TOP: &str = "const items = [...document.querySelectorAll('#top li')];
    return items.length ? items.map(li => [li.dataset.product, Number(li.dataset.users)]) : null;";

const SHOWN_CHART: &str = "const svg = document.querySelector('#chart svg');
    const users = svg && svg.querySelector('polyline.users');
    return users ? [document.querySelector('#top li[aria-pressed=\"true\"]')?.dataset.product,
      users.dataset.values] : null;";

/// What a browser must show of a running platform: every part ready, the bars equal to the
/// API's top, the chart equal to the selected product's windows, a bar picked by click and by
/// keyboard, nothing wider than a phone. Saves `<browser>.png` and `<browser>-phone.png`.
async fn shows_the_platform(browser: &Client, name: &str, base: &str) {
    browser
        .goto(&format!("{base}/"))
        .await
        .expect("the page loads");
    wait_for(
        browser,
        "const parts = [...document.querySelectorAll('#pipeline li')];
         return parts.length === 6 && parts.every(p => p.dataset.ready === 'true') ? true : null;",
        Duration::from_secs(30),
        "every part shown ready",
    )
    .await;
    wait_for(
        browser,
        "return document.getElementById('connection').dataset.state === 'live' ? true : null;",
        Duration::from_secs(10),
        "the live stream open",
    )
    .await;

    // The first closed minute (within about 70 s of demo traffic): the bars are the API's top.
    let mut shown = wait_for(
        browser,
        SHOWN_TOP,
        Duration::from_secs(100),
        "a closed minute",
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let top: Value = reqwest::get(format!("{base}/api/v1/analytics/top?limit=10"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let expected: Vec<Value> = top["products"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| json!([p["product_id"], p["unique_user_count"]]))
            .collect();
        if shown == Value::Array(expected.clone()) {
            break;
        }
        // A newer minute may have closed between the two reads: read both again.
        assert!(
            Instant::now() < deadline,
            "{name} shows {shown}, the API says {expected:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
        shown = wait_for(browser, SHOWN_TOP, Duration::from_secs(5), "the bars").await;
    }

    // The selected product's chart draws the analytics API's windows, oldest first.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let chart = wait_for(browser, SHOWN_CHART, Duration::from_secs(10), "the chart").await;
        let product = chart[0].as_str().expect("a selected product").to_owned();
        let windows: Value = reqwest::get(format!(
            "{base}/api/v1/analytics/products/{product}/windows?limit=60"
        ))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
        let mut users: Vec<String> = windows["windows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| w["unique_user_count"].to_string())
            .collect();
        users.reverse();
        if chart[1].as_str() == Some(users.join(",").as_str()) && !users.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{name}'s chart of {product} draws {}, the API says {users:?}",
            chart[1]
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Picking a bar selects it, by click and by keyboard. (A newer minute may replace the
    // bars at any moment: each is found again right before it is used.)
    let selected = |product: &str| {
        format!(
            "return document.querySelector('#top li[aria-pressed=\"true\"]')?.dataset.product === '{product}' ? true : null;"
        )
    };
    for (index, by_keyboard) in [(1, false), (2, true)] {
        let mut tries = 0;
        let product = loop {
            tries += 1;
            let bars = browser.find_all(Locator::Css("#top li")).await.unwrap();
            let Some(bar) = bars.get(index) else {
                break None;
            };
            let picked = async {
                let product = bar.attr("data-product").await?.unwrap_or_default();
                if by_keyboard {
                    bar.send_keys(&fantoccini::key::Key::Enter.to_string())
                        .await?;
                } else {
                    bar.click().await?;
                }
                Ok::<_, fantoccini::error::CmdError>(product)
            };
            match picked.await {
                Ok(product) => break Some(product),
                Err(e) if tries < 5 => {
                    eprintln!("{name}: the bars changed under the click ({e}); again");
                }
                Err(e) => panic!("{name}: cannot pick a bar: {e}"),
            }
        };
        if let Some(product) = product {
            wait_for(
                browser,
                &selected(&product),
                Duration::from_secs(5),
                "picked",
            )
            .await;
        }
    }
    screenshot(browser, &format!("{name}.png")).await;
    // At a phone's width nothing runs off the side.
    browser.set_window_size(390, 844).await.unwrap();
    wait_for(
        browser,
        "return document.documentElement.scrollWidth <= window.innerWidth ? true : null;",
        Duration::from_secs(5),
        "no horizontal overflow at a phone's width",
    )
    .await;
    screenshot(browser, &format!("{name}-phone.png")).await;
    browser.set_window_size(1280, 1000).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_what_the_api_says_and_reconnects_by_itself() {
    let _serial = serial().await;
    let drivers = [
        Driver::start(Browser::Chromium).await,
        Driver::start(Browser::Firefox).await,
    ];
    let dir = tempfile::tempdir().expect("a data directory");
    let port = testkit::free_port();
    let args = ["--demo-rate", "200", "--out-of-orderness", "1s"];
    let mut platform = up(dir.path(), port, &args);
    platform.wait_ready().await;
    let base = platform.url().to_owned();
    let mut browsers = Vec::new();
    for driver in &drivers {
        let browser = driver.browser().await;
        shows_the_platform(&browser, driver.browser.name(), &base).await;
        browsers.push(browser);
    }
    // Nothing went wrong in the page so far: no script error, no refused resource, no CSP
    // report, no failed request (Chromium's console; geckodriver does not serve Firefox's).
    let chromium = &browsers[0];
    let errors = console_errors(chromium).await;
    assert!(errors.is_empty(), "console errors: {errors:#?}");

    // Stopped: the pages say they are disconnected. Started again on the same data
    // directory: they recover by themselves.
    assert!(platform.terminate().success());
    for browser in &browsers {
        wait_for(
            browser,
            "return document.getElementById('disconnected').hidden ? null : \
             document.getElementById('connection').dataset.state;",
            Duration::from_secs(15),
            "the disconnected state",
        )
        .await;
    }
    let platform = up(dir.path(), port, &args);
    platform.wait_ready().await;
    for browser in &browsers {
        wait_for(
            browser,
            "return document.getElementById('disconnected').hidden && \
             document.getElementById('connection').dataset.state === 'live' ? true : null;",
            Duration::from_secs(30),
            "reconnected by itself",
        )
        .await;
    }

    // Across the outage, only the requests that could not reach the platform failed (network
    // errors, `net::ERR_...`); nothing else.
    let errors: Vec<String> = console_errors(chromium)
        .await
        .into_iter()
        .filter(|e| !e.contains("net::ERR_"))
        .collect();
    assert!(errors.is_empty(), "console errors: {errors:#?}");
    for browser in browsers {
        browser.close().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_traffic_it_says_how_to_send_some_and_it_asks_for_a_token_where_needed() {
    let _serial = serial().await;
    let driver = Driver::start(Browser::Chromium).await;
    let dir = tempfile::tempdir().expect("a data directory");
    // Analytics asks callers on this machine for a token too, as the deployed gateway does.
    let mut platform = up(
        dir.path(),
        testkit::free_port(),
        &["--local-analytics", "false"],
    );
    platform.wait_ready().await;
    let base = platform.url().to_owned();
    let password = std::fs::read_to_string(dir.path().join("admin-password")).unwrap();
    let browser = driver.browser().await;
    browser.goto(&format!("{base}/")).await.unwrap();

    wait_for(
        &browser,
        "return document.getElementById('sign-in').hidden ? null : true;",
        Duration::from_secs(10),
        "the sign-in form",
    )
    .await;
    // A wrong password is said so; the right one shows the data.
    browser
        .find(Locator::Id("username"))
        .await
        .unwrap()
        .send_keys("admin")
        .await
        .unwrap();
    let field = browser.find(Locator::Id("password")).await.unwrap();
    field.send_keys("not-the-password").await.unwrap();
    browser
        .find(Locator::Css("#sign-in button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for(
        &browser,
        "return document.getElementById('sign-in-error').textContent || null;",
        Duration::from_secs(10),
        "the sign-in error",
    )
    .await;
    field.clear().await.unwrap();
    field.send_keys(password.trim()).await.unwrap();
    browser
        .find(Locator::Css("#sign-in button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for(
        &browser,
        "const parts = [...document.querySelectorAll('#pipeline li')];
         return document.getElementById('sign-in').hidden && parts.length === 6 &&
           parts.every(p => p.dataset.ready === 'true') ? true : null;",
        Duration::from_secs(15),
        "signed in, the pipeline shown",
    )
    .await;
    // No traffic yet: the empty state, with a curl for this address.
    let curl = wait_for(
        &browser,
        "return document.getElementById('empty').hidden ? null : document.getElementById('curl').textContent;",
        Duration::from_secs(15),
        "the empty state",
    )
    .await;
    assert!(
        curl.as_str()
            .unwrap()
            .contains(&format!("{base}/api/v1/events")),
        "{curl}"
    );
    wait_for(
        &browser,
        "return document.getElementById('connection').dataset.state === 'live' ? true : null;",
        Duration::from_secs(15),
        "the live stream, with the token",
    )
    .await;
    screenshot(&browser, "dashboard-empty.png").await;
    let errors: Vec<String> = console_errors(&browser)
        .await
        .into_iter()
        // The refused token request and the 401s before signing in are the point here.
        .filter(|e| !e.contains("401 (Unauthorized)") && !e.contains("400 (Bad Request)"))
        .collect();
    assert!(errors.is_empty(), "console errors: {errors:#?}");
    browser.close().await.unwrap();
    assert!(platform.terminate().success());
}
