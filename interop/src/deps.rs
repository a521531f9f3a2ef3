//! Where the peers and their runtimes are: environment variables first, then the places
//! where `scripts/install-test-deps.sh` puts them.
//!
//! | variable                       | default                               |
//! | ------------------------------ | ------------------------------------- |
//! | `SOCKJET_INTEROP_VENV`         | `target/interop-venv`                 |
//! | `SOCKJET_INTEROP_PYTHON`       | `$SOCKJET_INTEROP_VENV/bin/python`    |
//! | `SOCKJET_INTEROP_NODE`         | `node` on `PATH`                      |
//! | `SOCKJET_INTEROP_NODE_MODULES` | `interop/peers/node_modules`          |
//! | `SOCKJET_INTEROP_CHROMIUM`     | `/usr/bin/chromium`                   |
//!
//! A missing dependency is a test failure, never a skip.

use std::{
    env,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

/// What to do about a missing dependency.
pub const INSTALL_HINT: &str = "run scripts/install-test-deps.sh (from the repository root) to install the interop test dependencies";

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("interop/ is inside the repository")
        .to_path_buf()
}

/// `interop/peers`, where the peer scripts are.
pub fn peers_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("peers")
}

/// A peer script in `interop/peers`.
pub fn peer_script(name: &str) -> PathBuf {
    let path = peers_dir().join(name);
    assert!(path.is_file(), "peer script {} is missing", path.display());
    path
}

fn env_path(var: &str) -> Option<PathBuf> {
    env::var_os(var)
        .filter(|value| !value.is_empty())
        .map(PathBuf::from)
}

/// The first `program` in a directory of `PATH`.
fn on_path(program: &str) -> Option<PathBuf> {
    env::var_os("PATH")
        .iter()
        .flat_map(env::split_paths)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

fn missing(what: &str, path: &Path, var: &str) -> ! {
    panic!(
        "interop test dependency missing: {what} not found at {} (set {var} to use another); {INSTALL_HINT}",
        path.display()
    )
}

/// Runs `program args` and panics with the install hint if it fails.
fn check_runs(what: &str, program: &Path, args: &[&str]) {
    let output = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|error| {
            panic!("cannot run {}: {error}; {INSTALL_HINT}", program.display())
        });
    assert!(
        output.status.success(),
        "interop test dependency missing: {what} ({} {} failed: {}); {INSTALL_HINT}",
        program.display(),
        args.join(" "),
        String::from_utf8_lossy(&output.stderr).trim()
    );
}

/// The Python of the venv that has `websockets`.
pub fn python() -> PathBuf {
    let python = env_path("SOCKJET_INTEROP_PYTHON").unwrap_or_else(|| {
        env_path("SOCKJET_INTEROP_VENV")
            .unwrap_or_else(|| repo_root().join("target/interop-venv"))
            .join("bin/python")
    });
    if !python.is_file() {
        missing("the interop Python venv", &python, "SOCKJET_INTEROP_PYTHON");
    }
    check_runs("Python websockets", &python, &["-c", "import websockets"]);
    python
}

/// The `node` binary.
pub fn node() -> PathBuf {
    if let Some(node) = env_path("SOCKJET_INTEROP_NODE") {
        if !node.is_file() {
            missing("node", &node, "SOCKJET_INTEROP_NODE");
        }
        return node;
    }
    on_path("node")
        .unwrap_or_else(|| missing("node", Path::new("node (on PATH)"), "SOCKJET_INTEROP_NODE"))
}

/// The `node_modules` directory that has `ws`.
pub fn node_modules() -> PathBuf {
    let dir = env_path("SOCKJET_INTEROP_NODE_MODULES")
        .unwrap_or_else(|| peers_dir().join("node_modules"));
    let ws = dir.join("ws/package.json");
    if !ws.is_file() {
        missing("Node.js ws", &ws, "SOCKJET_INTEROP_NODE_MODULES");
    }
    dir
}

/// The tinyproxy binary: `$SOCKJET_INTEROP_TINYPROXY`, else `tinyproxy` on `PATH`.
pub fn tinyproxy() -> PathBuf {
    env_path("SOCKJET_INTEROP_TINYPROXY")
        .filter(|path| path.is_file())
        .or_else(|| on_path("tinyproxy"))
        .unwrap_or_else(|| {
            missing(
                "tinyproxy",
                Path::new("tinyproxy (on PATH)"),
                "SOCKJET_INTEROP_TINYPROXY",
            )
        })
}

/// The flags every Chromium of the tests starts with: headless, without the sandbox (which
/// containers do not allow), the GPU, QUIC, or anything of its own on the network, and with
/// `/tmp` instead of the often small `/dev/shm`.
pub const CHROMIUM_FLAGS: [&str; 9] = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
];

/// The Chromium binary.
pub fn chromium() -> PathBuf {
    let chromium =
        env_path("SOCKJET_INTEROP_CHROMIUM").unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    if !chromium.is_file() {
        missing("Chromium", &chromium, "SOCKJET_INTEROP_CHROMIUM");
    }
    chromium
}
