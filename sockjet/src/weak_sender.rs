//! [`WeakSender`]: a way to reach a connection that does not keep it open, for rooms and
//! hubs that must forget a member when its handler is done with it.

use std::{fmt, sync::Arc};

use sockjet_proto::ConnectionClosed;

use crate::connection::{ConnectionId, Sender, Shared};

/// A reference to a connection that, unlike a [`Sender`], does not keep it open: when
/// the [`Connection`](crate::Connection) and every `Sender` of it are dropped, the
/// connection closes (1000) even if `WeakSender`s remain.
///
/// It is what a room should hold: it can still be [`broadcast`](crate::broadcast) to
/// while the connection is open (a closed one is skipped), and
/// [`upgrade`](Self::upgrade) gives a full `Sender` while the connection has one. It
/// keeps the connection's buffers allocated until dropped, so drop it when
/// [`closed`](Self::closed) resolves.
///
/// ```no_run
/// # async fn f(ws: sockjet::Connection) {
/// let member: sockjet::WeakSender = ws.sender().downgrade();
/// sockjet::broadcast([&member], "still reachable");
/// drop(ws); // closes the connection: `member` does not keep it open
/// assert!(member.upgrade().is_none());
/// # }
/// ```
#[derive(Clone)]
pub struct WeakSender {
    pub(crate) shared: Arc<Shared>,
}

impl WeakSender {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }

    /// A [`Sender`] for the connection, if it still has a live handle (a `Connection` or
    /// a `Sender`) and is not over: `None` once its last handle is dropped, since the
    /// connection is closing by then.
    ///
    /// ```no_run
    /// # async fn f(member: sockjet::WeakSender) {
    /// if let Some(sender) = member.upgrade() {
    ///     let _ = sender.send("direct").await;
    /// }
    /// # }
    /// ```
    pub fn upgrade(&self) -> Option<Sender> {
        self.shared
            .try_add_handle()
            .then(|| Sender::from_handle(self.shared.clone()))
    }

    /// The connection's id.
    ///
    /// ```no_run
    /// # fn f(member: &sockjet::WeakSender) { println!("{}", member.id()); }
    /// ```
    pub fn id(&self) -> ConnectionId {
        self.shared.id
    }

    /// Whether the connection is over.
    ///
    /// ```no_run
    /// # fn f(member: &sockjet::WeakSender) { if member.is_closed() { println!("gone"); } }
    /// ```
    pub fn is_closed(&self) -> bool {
        self.shared.lock().is_terminated()
    }

    /// Waits until the connection is closed and returns how it ended; see
    /// [`Sender::closed`].
    ///
    /// ```no_run
    /// # async fn f(member: sockjet::WeakSender) {
    /// println!("member left: {}", member.closed().await);
    /// # }
    /// ```
    pub async fn closed(&self) -> ConnectionClosed {
        self.shared.closed().await
    }

    /// Broadcast messages this connection missed; see [`Sender::dropped_messages`].
    ///
    /// ```no_run
    /// # fn f(member: &sockjet::WeakSender) { println!("{}", member.dropped_messages()); }
    /// ```
    pub fn dropped_messages(&self) -> u64 {
        self.shared.lock().dropped_messages
    }

    /// Bytes queued and not yet written; see [`Sender::buffered_amount`].
    ///
    /// ```no_run
    /// # fn f(member: &sockjet::WeakSender) { println!("{}", member.buffered_amount()); }
    /// ```
    pub fn buffered_amount(&self) -> usize {
        self.shared.lock().pending_write_len()
    }
}

/// What [`broadcast`](crate::broadcast) takes, like a [`Sender`].
impl AsRef<WeakSender> for WeakSender {
    fn as_ref(&self) -> &WeakSender {
        self
    }
}

impl fmt::Debug for WeakSender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WeakSender")
            .field("id", &self.shared.id)
            .finish()
    }
}
