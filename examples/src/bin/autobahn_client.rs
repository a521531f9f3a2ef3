//! Autobahn|Testsuite testee: a client that echoes every case.
//!
//! `autobahn_client <url> <agent>`: reads `<url>/getCaseCount`, runs
//! `<url>/runCase?case=N&agent=<agent>` for every case, echoing each message, then opens
//! `<url>/updateReports?agent=<agent>`.

use sockjet::{ClientBuilder, ConnectionConfig};

fn config() -> ConnectionConfig {
    ConnectionConfig::default()
        .max_message_size(Some(64 << 20))
        .ping_interval(None)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .unwrap_or_else(|| "ws://127.0.0.1:9001".to_owned());
    let agent = args.next().unwrap_or_else(|| "sockjet".to_owned());

    let mut ws = ClientBuilder::new(format!("{url}/getCaseCount"))
        .connection(config())
        .connect()
        .await?;
    let count: u32 = match ws.recv().await? {
        Some(message) => message.as_text().unwrap_or("0").trim().parse()?,
        None => 0,
    };
    let _ = ws.closed().await;
    drop(ws);

    for case in 1..=count {
        let case_url = format!("{url}/runCase?case={case}&agent={agent}");
        match ClientBuilder::new(case_url)
            .connection(config())
            .connect()
            .await
        {
            Ok(mut ws) => {
                while let Ok(Some(message)) = ws.recv().await {
                    if ws.send(message).await.is_err() {
                        break;
                    }
                }
                let _ = ws.closed().await;
            }
            Err(error) => eprintln!("case {case}: {error}"),
        }
    }

    let ws = ClientBuilder::new(format!("{url}/updateReports?agent={agent}"))
        .connection(config())
        .connect()
        .await?;
    let _ = ws.closed().await;
    Ok(())
}
