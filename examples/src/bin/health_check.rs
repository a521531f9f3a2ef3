//! HTTP and WebSocket on one port through a request hook, like Python `websockets`'
//! `process_request`: `GET /healthz` answers 200 for load balancers, a plain `GET /`
//! (a browser) gets a small page that opens a WebSocket back to the server, and WebSocket
//! requests are upgraded and echoed. A response hook adds a header to every answer.
//!
//! `cargo run -p sockjet-examples --bin health_check`, then
//! `curl -i http://127.0.0.1:8765/healthz` or open http://127.0.0.1:8765/ in a browser.

use sockjet::{
    Server,
    hooks::{respond, respond_with},
    proto::http::{HeaderValue, StatusCode, header},
};

const PAGE: &str = r#"<!doctype html>
<meta charset="utf-8"><title>sockjet echo</title>
<input id="text" value="hello"> <button id="send">send</button>
<pre id="log"></pre>
<script>
  const ws = new WebSocket(`ws://${location.host}/`);
  const log = (line) => (document.getElementById("log").textContent += line + "\n");
  ws.onopen = () => log("open");
  ws.onmessage = (event) => log("< " + event.data);
  ws.onclose = (event) => log("closed " + event.code);
  document.getElementById("send").onclick = () => ws.send(document.getElementById("text").value);
</script>
"#;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8765".to_owned());
    let server = Server::builder()
        .process_request(|request, _peer| {
            let upgrade = request.headers().contains_key(header::UPGRADE);
            match request.uri().path() {
                "/healthz" => Some(respond(StatusCode::OK, "ok\n")),
                "/" if !upgrade => Some(respond_with(
                    StatusCode::OK,
                    "text/html; charset=utf-8",
                    PAGE,
                )),
                // Anything else goes on to the handshake (which refuses non-WebSocket
                // requests with 400).
                _ => None,
            }
        })
        .process_response(|_request, response| {
            response
                .headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        })
        .bind(addr)
        .await?;
    println!("listening on http://{}/ (and ws://)", server.local_addr());
    server
        .serve(|mut ws| async move {
            while let Ok(Some(message)) = ws.recv().await {
                if ws.send(message).await.is_err() {
                    break;
                }
            }
        })
        .await
}
