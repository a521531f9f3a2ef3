//! Subprotocol negotiation over real sockets (RFC 6455 §4.2.2), with Python `websockets`'
//! rules: the server's preference among the client's offers; 400 when the client offers
//! none or none that match; a selection function can decide otherwise; the client refuses
//! a choice it did not offer.

mod policy_common;

use std::net::SocketAddr;

use policy_common::*;
use sockjet::{
    ClientBuilder, Connection, Error, Server, ServerBuilder,
    proto::{
        ClientConfig, HandshakeError,
        http::{HeaderValue, StatusCode, header},
    },
};

/// Serves `builder`; each connection is sent the subprotocol the server sees ("-" for
/// none).
async fn subprotocol_server(builder: ServerBuilder) -> SocketAddr {
    start(
        builder,
        describing(|ws| ws.subprotocol().unwrap_or("-").to_owned()),
    )
    .await
}

async fn offering(addr: SocketAddr, offers: &[&str]) -> Result<Connection, Error> {
    let config = ClientConfig::default().subprotocols(offers.iter().copied());
    within(
        ClientBuilder::new(format!("ws://{addr}/"))
            .handshake(config)
            .connect(),
    )
    .await
}

/// The subprotocol both ends agree on, checking that they do.
async fn agreed(addr: SocketAddr, offers: &[&str]) -> Option<String> {
    let mut ws = offering(addr, offers).await.unwrap();
    let client_side = ws.subprotocol().map(str::to_owned);
    let server_side = first_text(&mut ws).await;
    assert_eq!(server_side, client_side.as_deref().unwrap_or("-"));
    client_side
}

#[tokio::test]
async fn the_server_picks_its_preference_among_the_offers() {
    let addr = subprotocol_server(Server::builder().subprotocols(["chat.v2", "chat.v1"])).await;
    assert_eq!(
        agreed(addr, &["chat.v1", "chat.v2"]).await.as_deref(),
        Some("chat.v2")
    );
    assert_eq!(
        agreed(addr, &["other", "chat.v1"]).await.as_deref(),
        Some("chat.v1")
    );
}

#[tokio::test]
async fn no_offer_or_no_match_gets_400() {
    let addr = subprotocol_server(Server::builder().subprotocols(["chat.v2", "chat.v1"])).await;
    assert_eq!(
        refused_status(offering(addr, &[]).await),
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        refused_status(offering(addr, &["mqtt"]).await),
        StatusCode::BAD_REQUEST
    );
    let raw = raw_exchange(
        addr,
        &upgrade_request("/", "Sec-WebSocket-Protocol: mqtt\r\n"),
    )
    .await;
    assert_eq!(raw.status, 400);
    assert_eq!(
        raw.body,
        b"invalid subprotocol; expected one of chat.v2, chat.v1\n"
    );
    let raw = raw_exchange(addr, &upgrade_request("/", "")).await;
    assert_eq!(raw.body, b"missing subprotocol\n");
}

#[tokio::test]
async fn without_server_subprotocols_none_is_chosen() {
    let addr = subprotocol_server(Server::builder()).await;
    assert_eq!(agreed(addr, &["chat"]).await, None);
    assert_eq!(agreed(addr, &[]).await, None);
}

#[tokio::test]
async fn a_selection_function_decides_and_may_choose_none() {
    let builder = Server::builder().select_subprotocol(|request, offered| {
        // A request hook's data would be visible here; the path stands in for it.
        if request.uri().path() != "/" {
            return None;
        }
        ["chat.v2", "chat.v1"]
            .into_iter()
            .find(|supported| offered.contains(supported))
            .map(str::to_owned)
    });
    let addr = subprotocol_server(builder).await;
    assert_eq!(agreed(addr, &["chat.v1"]).await.as_deref(), Some("chat.v1"));
    // Clients that speak none of them are accepted without a subprotocol.
    assert_eq!(agreed(addr, &["mqtt"]).await, None);
    assert_eq!(agreed(addr, &[]).await, None);
}

#[tokio::test]
async fn a_selection_of_an_unoffered_subprotocol_is_not_sent() {
    let builder = Server::builder().select_subprotocol(|_, _| Some("sneaky".to_owned()));
    let addr = subprotocol_server(builder).await;
    assert_eq!(
        refused_status(offering(addr, &["chat"]).await),
        StatusCode::INTERNAL_SERVER_ERROR
    );
}

#[tokio::test]
async fn the_client_fails_when_the_server_picks_one_it_did_not_offer() {
    // A response hook forces a subprotocol the client never offered.
    let builder = Server::builder().process_response(|_request, response| {
        if response.status() == StatusCode::SWITCHING_PROTOCOLS {
            response.headers_mut().insert(
                header::SEC_WEBSOCKET_PROTOCOL,
                HeaderValue::from_static("unoffered"),
            );
        }
    });
    let addr = subprotocol_server(builder).await;
    for offers in [&["chat"][..], &[]] {
        let error = offering(addr, offers).await.unwrap_err();
        assert!(
            matches!(
                error.handshake_error(),
                Some(HandshakeError::UnexpectedNegotiation(_))
            ),
            "{offers:?}: {error}"
        );
    }
}

#[tokio::test]
async fn a_panicking_selection_function_answers_500() {
    let builder = Server::builder().select_subprotocol(|_, offered| {
        assert!(!offered.contains(&"boom"), "selection bug");
        None
    });
    let addr = subprotocol_server(builder).await;
    assert_eq!(
        refused_status(offering(addr, &["boom"]).await),
        StatusCode::INTERNAL_SERVER_ERROR
    );
    assert_eq!(agreed(addr, &["fine"]).await, None);
}
