//! Headless Chromium as a peer: the page it opens (`peers/browser.html`) and a profile
//! directory of its own for each run.

use std::path::PathBuf;

use serde_json::{Value, json};

use crate::{
    deps,
    process::PeerCommand,
    scenario::{GOING_AWAY_REASON, MIB, large_text},
};

/// The page's report when everything went right, the server having answered
/// `extensions` (the page's `WebSocket.extensions`) on both paths.
pub fn expected_report(extensions: &str) -> Value {
    json!({
        "errors": [],
        "echo": {
            "extensions": extensions,
            "text": {"type": "text", "data": "héllo from chromium ✓ 🦀"},
            "binary": {
                "type": "binary",
                "hex": (0..=255u8).map(|b| format!("{b:02x}")).collect::<String>(),
            },
            "big_binary": {"type": "binary", "len": MIB, "equal": true},
            "big_text": {"type": "text", "len": large_text().len(), "equal": true},
            "random_binary": {"type": "binary", "len": 256 * 1024, "equal": true},
            "repeated_text": [true, true, true, true, true],
            "after_close": "closed",
            "close": {"code": 1000, "reason": "done", "wasClean": true},
        },
        "server_closes": {
            "extensions": extensions,
            "messages": ["bye from sockjet"],
            "close": {"code": 1001, "reason": GOING_AWAY_REASON, "wasClean": true},
        },
    })
}

/// What the server receives on `/echo` from the page: type and length of each message.
pub fn echoed_messages() -> Vec<(&'static str, usize)> {
    let repeated = "context takeover ✓ ".len() * 32;
    let mut messages = vec![
        ("text", "héllo from chromium ✓ 🦀".len()),
        ("binary", 256),
        ("binary", MIB),
        ("text", large_text().len()),
        ("binary", 256 * 1024),
    ];
    messages.extend([("text", repeated); 5]);
    messages
}

/// The `file://` URL of `peers/browser.html`, told to connect to `127.0.0.1:port` over
/// `wss://` if `tls`, else `ws://`.
pub fn page_url(port: u16, tls: bool) -> String {
    let page: PathBuf = deps::peer_script("browser.html")
        .canonicalize()
        .expect("canonical path of browser.html");
    let mut url = String::from("file://");
    for byte in page.to_str().expect("UTF-8 path").bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'/' | b'-' | b'_' | b'.' | b'~' => {
                url.push(char::from(byte));
            }
            _ => url.push_str(&format!("%{byte:02X}")),
        }
    }
    let scheme = if tls { "wss" } else { "ws" };
    format!("{url}?port={port}&scheme={scheme}")
}

/// A Chromium profile directory under `dir`, removed on drop.
pub struct Profile(PathBuf);

impl Profile {
    /// Creates a fresh one under `dir` (a test's `CARGO_TARGET_TMPDIR`).
    ///
    /// # Panics
    ///
    /// If it cannot be created.
    pub fn new(dir: &str) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.subsec_nanos());
        let dir =
            PathBuf::from(dir).join(format!("chromium-profile-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create the Chromium profile directory");
        Self(dir)
    }

    /// Chromium with its headless flags, this profile, `extra` flags, opening `url`.
    pub fn command(&self, extra: Vec<String>, url: String) -> PeerCommand {
        PeerCommand {
            name: "chromium".to_owned(),
            program: deps::chromium(),
            args: deps::CHROMIUM_FLAGS
                .into_iter()
                .map(Into::into)
                .chain([format!("--user-data-dir={}", self.0.display()).into()])
                .chain(extra.into_iter().map(Into::into))
                .chain([url.into()])
                .collect(),
            envs: Vec::new(),
        }
    }
}

impl Drop for Profile {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
