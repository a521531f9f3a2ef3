//! The interop scenario with sockjet behind axum: the WebSocket routes of an axum app
//! (sockjet-axum's `WebSocketUpgrade`), sharing its port with an HTTP route, and a peer
//! client playing its side against them. Checks that a connection accepted through axum
//! and hyper behaves as one accepted by sockjet's own server.

use axum::{Router, routing::get};
use sockjet_axum::WebSocketUpgrade;
use tokio::sync::mpsc;

use crate::{
    process::{PeerCommand, PeerProcess},
    scenario::{
        Report, TEST_TIMEOUT, beside_peer, check_events, connection_config, expected_peer_events,
        path_reports, play_closer, play_main,
    },
};

/// Serves an axum app with `/healthz` and the scenario's two WebSocket paths on a
/// loopback port, runs `client` (with `ws://127.0.0.1:PORT`) against it, and checks both
/// sides, as [`sockjet_server_with`](crate::scenario::sockjet_server_with) does for
/// sockjet's own server.
pub async fn axum_server_with(client: PeerCommand) {
    let started = std::time::Instant::now();
    let (report, mut reports) = mpsc::unbounded_channel::<Report>();
    let peer_name = client.name.clone();
    let scenario = move |upgrade: WebSocketUpgrade| {
        let report = report.clone();
        let peer_name = peer_name.clone();
        async move {
            upgrade
                .config(connection_config(None))
                .on_upgrade(move |ws| async move {
                    let path = ws.path().to_owned();
                    let result = match path.as_str() {
                        "/main" => play_main(ws, &peer_name)
                            .await
                            .map(|outcome| format!("ping RTT {:?}", outcome.rtt)),
                        _ => play_closer(ws, &peer_name)
                            .await
                            .map(|closed| closed.to_string()),
                    };
                    let _ = report.send((path, result));
                })
        }
    };
    let app = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/main", get(scenario.clone()))
        .route("/sockjet-closes", get(scenario));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let url = format!("ws://{}", listener.local_addr().expect("a bound listener"));
    let serving = tokio::spawn(async move { axum::serve(listener, app).await });

    let mut peer = PeerProcess::spawn(&client.arg(&url));
    let run = path_reports(&mut reports, "sockjet behind axum");
    let (summaries, events) = beside_peer(&mut peer, TEST_TIMEOUT, None, run).await;
    serving.abort();
    check_events(&peer, &events, &expected_peer_events());
    println!(
        "{} ↔ sockjet behind axum: ok in {:?} ({})",
        peer.name(),
        started.elapsed(),
        summaries.join("; ")
    );
}
