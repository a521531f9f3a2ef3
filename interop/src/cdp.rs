//! Just enough of the Chrome DevTools Protocol to drive headless Chromium from a test:
//! open tabs, run JavaScript in them, wait for a condition, take screenshots. It speaks
//! CDP over sockjet's own WebSocket client, one more interop check on the way.

use std::{path::Path, process::Stdio, time::Duration};

use base64::Engine as _;
use serde_json::{Value, json};
use sockjet::{ClientBuilder, Connection, ConnectionConfig, Message};
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::{Child, Command},
    time::{Instant, sleep, timeout},
};

use crate::deps;

/// Chromium's start on a busy 2-core machine is the slow part.
pub const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Longest wait for one DevTools command.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// A headless Chromium and a DevTools connection to it; killed on drop.
pub struct Browser {
    _child: Child,
    devtools: Connection,
    next_id: u64,
    _profile: tempdir::Dir,
}

/// A tab: its DevTools session.
#[derive(Clone, Debug)]
pub struct Page {
    session: String,
    /// For messages.
    pub name: String,
}

impl Browser {
    /// Starts Chromium (`deps::chromium()`) headless with remote debugging on a free port,
    /// and connects to it.
    ///
    /// # Panics
    ///
    /// If Chromium cannot start or its DevTools endpoint does not answer in time.
    pub async fn launch() -> Self {
        let profile = tempdir::Dir::new("chromium-cdp");
        let mut child = Command::new(deps::chromium())
            .args(deps::CHROMIUM_FLAGS)
            .args([
                // Several tabs run at once: none may be throttled as a background tab.
                "--disable-background-timer-throttling",
                "--disable-renderer-backgrounding",
                "--disable-backgrounding-occluded-windows",
                "--remote-debugging-port=0",
                "--window-size=1200,800",
                "about:blank",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|error| {
                panic!("cannot start chromium: {error}; {}", deps::INSTALL_HINT)
            });
        let stderr = child.stderr.take().expect("stderr is piped");
        let mut lines = BufReader::new(stderr).lines();
        let mut seen = String::new();
        let url = timeout(START_TIMEOUT, async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(url) = line.strip_prefix("DevTools listening on ") {
                    return Some(url.trim().to_owned());
                }
                seen.push_str(&line);
                seen.push('\n');
            }
            None
        })
        .await
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("chromium gave no DevTools URL; its stderr:\n{seen}"));
        // Keep draining stderr so that Chromium never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let config = ConnectionConfig::default()
            .max_message_size(Some(64 << 20))
            .ping_interval(None);
        let devtools = ClientBuilder::new(url.clone())
            .connection(config)
            .connect()
            .await
            .unwrap_or_else(|error| {
                panic!("cannot connect to chromium's DevTools at {url}: {error}")
            });
        Self {
            _child: child,
            devtools,
            next_id: 0,
            _profile: profile,
        }
    }

    /// Sends a command (to a tab's session, or to the browser) and returns its result.
    ///
    /// # Errors
    ///
    /// The command failed, or the connection did.
    pub async fn command(
        &mut self,
        session: Option<&str>,
        method: &str,
        params: Value,
    ) -> Result<Value, String> {
        self.next_id += 1;
        let id = self.next_id;
        let mut command = json!({ "id": id, "method": method, "params": params });
        if let Some(session) = session {
            command["sessionId"] = session.into();
        }
        self.devtools
            .send(command.to_string())
            .await
            .map_err(|error| format!("{method}: {error}"))?;
        let deadline = Instant::now() + COMMAND_TIMEOUT;
        loop {
            let message = timeout(deadline - Instant::now(), self.devtools.recv())
                .await
                .map_err(|_| format!("{method}: no answer in {COMMAND_TIMEOUT:?}"))?
                .map_err(|error| format!("{method}: {error}"))?
                .ok_or_else(|| format!("{method}: DevTools closed the connection"))?;
            let Message::Text(text) = message else {
                continue;
            };
            let answer: Value = serde_json::from_str(text.as_str())
                .map_err(|error| format!("{method}: bad JSON from DevTools: {error}"))?;
            // Events have no id; answers to this command have ours.
            if answer["id"].as_u64() != Some(id) {
                continue;
            }
            if let Some(error) = answer.get("error") {
                return Err(format!("{method}: {error}"));
            }
            return Ok(answer["result"].clone());
        }
    }

    /// Opens a tab at `url`.
    ///
    /// # Errors
    ///
    /// DevTools refused.
    pub async fn open(&mut self, name: &str, url: &str) -> Result<Page, String> {
        let target = self
            .command(None, "Target.createTarget", json!({ "url": url }))
            .await?;
        let target_id = target["targetId"].clone();
        let attached = self
            .command(
                None,
                "Target.attachToTarget",
                json!({ "targetId": target_id, "flatten": true }),
            )
            .await?;
        let session = attached["sessionId"]
            .as_str()
            .ok_or("no sessionId")?
            .to_owned();
        Ok(Page {
            session,
            name: name.to_owned(),
        })
    }

    /// Runs `expression` in `page` (awaiting a promise) and returns its value.
    ///
    /// # Errors
    ///
    /// The expression threw, or DevTools failed.
    pub async fn eval(&mut self, page: &Page, expression: &str) -> Result<Value, String> {
        let result = self
            .command(
                Some(&page.session),
                "Runtime.evaluate",
                json!({ "expression": expression, "returnByValue": true, "awaitPromise": true }),
            )
            .await?;
        if let Some(exception) = result.get("exceptionDetails") {
            return Err(format!("{}: `{expression}` threw: {exception}", page.name));
        }
        Ok(result["result"]["value"].clone())
    }

    /// Waits until `expression` is truthy in `page`, polling; returns its last value.
    ///
    /// # Errors
    ///
    /// Not within `limit` (the message gives `describe`'s value then), or DevTools failed.
    pub async fn wait_for(
        &mut self,
        page: &Page,
        expression: &str,
        describe: &str,
        limit: Duration,
    ) -> Result<Value, String> {
        let deadline = Instant::now() + limit;
        loop {
            // While the page is still loading its script, the expression may throw: that
            // is "not yet" too.
            let value = self.eval(page, expression).await;
            let truthy = value.as_ref().is_ok_and(|value| {
                !matches!(value, Value::Null | Value::Bool(false))
                    && value.as_f64() != Some(0.0)
                    && value.as_str() != Some("")
            });
            if truthy {
                return value;
            }
            if Instant::now() > deadline {
                let state = self.eval(page, describe).await.unwrap_or_default();
                let last = match value {
                    Ok(value) => value.to_string(),
                    Err(error) => error,
                };
                return Err(format!(
                    "{}: `{expression}` not true within {limit:?} (last: {last}); {describe} = {state}",
                    page.name
                ));
            }
            sleep(Duration::from_millis(100)).await;
        }
    }

    /// Saves a PNG screenshot of `page` to `path`.
    ///
    /// # Errors
    ///
    /// DevTools failed, or the file cannot be written.
    pub async fn screenshot(&mut self, page: &Page, path: &Path) -> Result<(), String> {
        let shot = self
            .command(
                Some(&page.session),
                "Page.captureScreenshot",
                json!({ "format": "png" }),
            )
            .await?;
        let data = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().ok_or("no screenshot data")?)
            .map_err(|error| format!("screenshot: {error}"))?;
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|error| error.to_string())?;
        }
        std::fs::write(path, data).map_err(|error| format!("{}: {error}", path.display()))
    }
}

mod tempdir {
    use std::path::{Path, PathBuf};

    /// A directory under the system's temp dir, removed on drop.
    pub(super) struct Dir(PathBuf);

    impl Dir {
        pub(super) fn new(prefix: &str) -> Self {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |elapsed| elapsed.subsec_nanos());
            let dir = std::env::temp_dir().join(format!("{prefix}-{}-{nanos}", std::process::id()));
            std::fs::create_dir_all(&dir).expect("create a temporary directory");
            Self(dir)
        }

        pub(super) fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}
