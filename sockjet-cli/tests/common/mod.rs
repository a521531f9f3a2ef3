//! Helpers shared by the command-line tests.
// Each test binary compiles this module and uses only part of it.
#![allow(dead_code, unreachable_pub, unused_imports)]

mod certificates;
mod process;
#[cfg(target_os = "linux")]
pub mod procfs;
mod temp_dir;

use std::future::Future;

pub use certificates::{TestCertificates, test_certificates, tls_connector};
pub use process::{Finished, Serve, Sockjet, TIMEOUT};
use sockjet::{Connection, Server};
pub use temp_dir::TempDir;

/// Runs a scripted WebSocket server in the test process; returns its runtime (keep it
/// alive for the test) and URL.
pub fn scripted_server<H, F>(handler: H) -> (tokio::runtime::Runtime, String)
where
    H: Fn(Connection) -> F + Send + Sync + 'static,
    F: Future<Output = ()> + Send + 'static,
{
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let server = runtime
        .block_on(Server::bind("127.0.0.1:0"))
        .expect("bind test server");
    let url = format!("ws://{}", server.local_addr());
    runtime.spawn(server.serve(handler));
    (runtime, url)
}

/// A multi-threaded runtime for a test's async steps.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Runtime::new().expect("tokio runtime")
}

/// Runs a test step, failing the test if it takes longer than [`TIMEOUT`].
pub async fn within<T>(future: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(TIMEOUT, future)
        .await
        .expect("timed out")
}
