//! `sockjet serve --broadcast`: every message received on any connection is sent to every
//! open connection, its sender included, text as text and binary as binary, with
//! [`sockjet::broadcast`] (the frame built once, a bounded queue per receiver: a receiver
//! too slow to keep up misses messages instead of holding up the others).
//!
//! It is the server side of `sockjet bench --fanout` (one publisher, many subscribers),
//! and what the Node and Python peers' broadcast servers do in `bench/compare`.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, MutexGuard},
};

use sockjet::{Connection, ConnectionId, Sender};

/// The connections a message goes to.
///
/// Publishing must not hold a lock while it sends to ten thousand connections, nor copy the
/// list each time: it takes a snapshot, an `Arc<[Sender]>` shared by every publish until
/// the membership changes. Joining and leaving only mark the snapshot stale, so that
/// 10,000 connections opening one after the other cost one copy of the list at the next
/// publish, not one copy per join.
#[derive(Debug, Default)]
pub(crate) struct Room(Mutex<Members>);

#[derive(Debug, Default)]
struct Members {
    by_id: HashMap<ConnectionId, Sender>,
    /// The current list, rebuilt at the first publish after a change.
    snapshot: Option<Arc<[Sender]>>,
}

impl Room {
    /// An empty room.
    pub(crate) fn new() -> Arc<Self> {
        Arc::default()
    }

    fn lock(&self) -> MutexGuard<'_, Members> {
        // A panic elsewhere leaves a member list that is still a valid list.
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Adds `ws` to the room until the returned guard is dropped.
    fn join(self: &Arc<Self>, ws: &Connection) -> Membership {
        let mut members = self.lock();
        members.by_id.insert(ws.id(), ws.sender());
        members.snapshot = None;
        Membership {
            room: Arc::clone(self),
            id: ws.id(),
        }
    }

    /// The members now: the shared snapshot, built if stale.
    fn members(&self) -> Arc<[Sender]> {
        let mut members = self.lock();
        if let Some(snapshot) = &members.snapshot {
            return Arc::clone(snapshot);
        }
        let snapshot: Arc<[Sender]> = members.by_id.values().cloned().collect();
        members.snapshot = Some(Arc::clone(&snapshot));
        snapshot
    }

    /// Number of members.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().by_id.len()
    }
}

/// A connection's place in the room, given up on drop (however the handler ends).
struct Membership {
    room: Arc<Room>,
    id: ConnectionId,
}

impl Drop for Membership {
    fn drop(&mut self) {
        let mut members = self.room.lock();
        if members.by_id.remove(&self.id).is_some() {
            members.snapshot = None;
        }
    }
}

/// Joins `room`, and sends every message received to every member until the connection
/// closes (on shutdown, the server closes it with 1001).
pub(crate) async fn relay(mut ws: Connection, room: Arc<Room>) {
    let membership = room.join(&ws);
    // On shutdown the server closes every connection with 1001: `recv` then ends.
    while let Ok(Some(message)) = ws.recv().await {
        // Queued to every member without waiting; a member whose queue is full misses it
        // (counted in its `dropped_messages`).
        let _ = sockjet::broadcast(room.members().iter(), message);
    }
    // Out of the room before the end of the closing handshake: nothing more to send.
    drop(membership);
    ws.closed().await;
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use sockjet::{CloseCode, Message, Server};

    use super::*;

    /// `what`'s output, within a bound.
    async fn within<T>(what: impl Future<Output = T>) -> T {
        tokio::time::timeout(Duration::from_secs(10), what)
            .await
            .expect("in time")
    }

    /// Three clients in a room: what one sends, all three get; a client that leaves is
    /// removed from the room.
    #[tokio::test]
    async fn messages_go_to_every_member_and_leavers_are_removed() {
        let room = Room::new();
        let server = Server::bind("127.0.0.1:0").await.unwrap();
        let url = format!("ws://{}", server.local_addr());
        tokio::spawn({
            let room = Arc::clone(&room);
            server.serve(move |ws| relay(ws, Arc::clone(&room)))
        });
        let mut clients = Vec::new();
        for _ in 0..3 {
            clients.push(within(sockjet::connect(&url)).await.unwrap());
        }
        // Joining happens in the handler, after the handshake: wait for all three.
        within(async {
            while room.len() < 3 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await;
        clients[1]
            .send(Message::binary(vec![1u8, 2, 3]))
            .await
            .unwrap();
        clients[2].send("hello").await.unwrap();
        for client in &mut clients {
            let first = within(client.recv()).await.unwrap().unwrap();
            assert_eq!(first, Message::binary(vec![1u8, 2, 3]));
            let second = within(client.recv()).await.unwrap().unwrap();
            assert_eq!(second, Message::text("hello"));
        }
        let leaver = clients.pop().unwrap();
        leaver
            .close(CloseCode::NORMAL_CLOSURE, "bye")
            .await
            .unwrap();
        drop(leaver);
        within(async {
            while room.len() > 2 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await;
        assert_eq!(room.members().len(), 2);
    }
}
