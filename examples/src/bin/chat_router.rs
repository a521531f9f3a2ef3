//! Chat rooms by path, as the guide's chat application: `/chat/{room}` puts the client in
//! that room and every message goes to the others in it; any other path gets 404 before
//! the upgrade.
//!
//! `cargo run -p sockjet-examples --bin chat_router`, then in two terminals
//! `sockjet connect ws://127.0.0.1:8765/chat/lobby`.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use sockjet::{Connection, ConnectionId, Router, Sender, Server};

/// The open connections of each room.
type Rooms = Arc<Mutex<HashMap<String, HashMap<ConnectionId, Sender>>>>;

async fn chat(mut ws: Connection, rooms: Rooms) {
    let room = ws.path_param("room").unwrap_or("lobby").to_owned();
    let id = ws.id();
    rooms
        .lock()
        .unwrap()
        .entry(room.clone())
        .or_default()
        .insert(id, ws.sender());
    let _ = ws.send(format!("you joined {room} as {id}")).await;
    while let Ok(Some(message)) = ws.recv().await {
        // Copy the others out, so that no lock is held while sending.
        let others: Vec<Sender> = rooms.lock().unwrap()[&room]
            .iter()
            .filter(|(other, _)| **other != id)
            .map(|(_, sender)| sender.clone())
            .collect();
        for other in others {
            let _ = other.send(message.clone()).await;
        }
    }
    let mut rooms = rooms.lock().unwrap();
    if let Some(members) = rooms.get_mut(&room) {
        members.remove(&id);
        if members.is_empty() {
            rooms.remove(&room);
        }
    }
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8765".to_owned());
    let rooms = Rooms::default();
    let router = Router::new()
        .route("/chat/{room}", move |ws| chat(ws, rooms.clone()))
        .route("/", |ws: Connection| async move {
            let _ = ws.send("try /chat/{room}").await;
        });
    let server = Server::bind(addr).await?;
    println!("listening on ws://{}/chat/{{room}}", server.local_addr());
    server.serve_router(router).await
}
