//! A `wss://` echo server with its certificate and key read from PEM files.
//!
//! ```text
//! cargo run -p sockjet-examples --bin tls_server -- cert.pem key.pem 127.0.0.1:8443
//! ```
//!
//! For a try on one machine, make a certificate for `localhost` (for example with
//! `openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30
//! -subj /CN=localhost -addext subjectAltName=DNS:localhost -keyout key.pem -out cert.pem`)
//! and tell the client to trust `cert.pem`, e.g. Python:
//! `python -m websockets wss://localhost:8443` with `SSL_CERT_FILE=cert.pem`.
//!
//! Ctrl-C or SIGTERM shuts the server down gracefully.

use sockjet::{Server, tls::ServerTls};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(cert), Some(key)) = (args.next(), args.next()) else {
        eprintln!("usage: tls_server CERT.pem KEY.pem [ADDR]");
        std::process::exit(2);
    };
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:8443".to_owned());

    // A missing file, a file with no certificate or key, or a key that does not belong to
    // the certificate is reported here, with the file's name.
    let tls = ServerTls::from_pem_files(&cert, &key)?;
    let server = Server::builder().tls(tls).bind(addr).await?;
    println!("listening on wss://{}", server.local_addr());
    server
        .serve_with_shutdown(
            |mut ws| async move {
                while let Ok(Some(message)) = ws.recv().await {
                    if ws.send(message).await.is_err() {
                        break;
                    }
                }
            },
            async {
                let signal = sockjet::shutdown_signal().await;
                println!("{signal}: shutting down");
            },
        )
        .await?;
    Ok(())
}
