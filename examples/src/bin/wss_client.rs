//! A `wss://` client: sends each argument as a message and prints the replies.
//!
//! `wss_client <url> [--ca-file FILE] [message...]`
//!
//! Without `--ca-file`, the server's certificate must chain to one of the system's root
//! certificates (`SSL_CERT_FILE` and `SSL_CERT_DIR` can point elsewhere); with it, only
//! to the CA in that PEM file, e.g. a test CA:
//!
//! ```text
//! cargo run -p sockjet-examples --bin wss_client -- wss://localhost:8443/ --ca-file ca.pem hello
//! ```
//!
//! Proxy environment variables (`https_proxy`, `all_proxy`, `no_proxy`) are honoured.

use sockjet::{ClientBuilder, CloseCode, tls::ClientTls};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .ok_or("usage: wss_client <wss://url> [--ca-file FILE] [message...]")?;
    let mut messages: Vec<String> = args.collect();
    let mut builder = ClientBuilder::new(url.as_str()).user_agent("sockjet-wss-example/1");
    if messages.first().map(String::as_str) == Some("--ca-file") {
        messages.remove(0);
        let file = messages.first().cloned().ok_or("--ca-file needs a FILE")?;
        messages.remove(0);
        builder = builder.tls(ClientTls::ca_file(file)?);
    }

    let mut ws = builder.connect().await?;
    println!("connected to {url}");
    for message in messages {
        ws.send(message.as_str()).await?;
        match ws.recv().await? {
            Some(reply) => println!("< {reply:?}"),
            None => break,
        }
    }
    ws.close(CloseCode::NORMAL_CLOSURE, "").await?;
    Ok(())
}
