//! [`Backend`]: how a hub reaches the hubs of other processes; [`InProcess`], the default,
//! reaches none.

use std::{fmt, sync::Weak};

use sockjet::{BroadcastReport, Message};

use crate::hub::HubInner;

/// A hub's random identity, carried by every message it publishes through a backend, so
/// that it can recognise (and skip) its own messages when the backend echoes them back.
///
/// ```
/// let hub = sockjet_hub::Hub::new();
/// assert_ne!(hub.id(), sockjet_hub::Hub::new().id());
/// println!("hub {}", hub.id());
/// ```
#[derive(Clone, Copy, Debug, Eq, Hash, PartialEq)]
pub struct HubId(pub [u8; 16]);

impl HubId {
    pub(crate) fn random() -> Self {
        let mut bytes = [0; 16];
        if getrandom::fill(&mut bytes).is_err() {
            // No OS randomness (extraordinary): time and process id still tell two hubs
            // apart in practice, which is all the id is for.
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            bytes = (nanos ^ (u128::from(std::process::id()) << 96)).to_le_bytes();
        }
        Self(bytes)
    }
}

impl fmt::Display for HubId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|byte| write!(f, "{byte:02x}"))
    }
}

/// What happened to a message on its way to other processes.
///
/// ```
/// use sockjet_hub::{Hub, RemoteDelivery};
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let report = Hub::new().publish("lobby", "hi").unwrap();
/// assert_eq!(report.remote, RemoteDelivery::InProcessOnly);
/// # }
/// ```
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
#[non_exhaustive]
pub enum RemoteDelivery {
    /// The hub has no backend to other processes ([`InProcess`]).
    InProcessOnly,
    /// Queued for the other processes (whose delivery is then at most once: pub/sub
    /// keeps nothing for a process that is not connected at that moment).
    Queued,
    /// Not sent to the other processes; counted in [`BackendStats::failed`].
    Failed(RemoteFailure),
}

/// Why a message did not go to the other processes.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
#[non_exhaustive]
pub enum RemoteFailure {
    /// The backend is not connected (it keeps reconnecting).
    Disconnected,
    /// The backend's outgoing queue is full: it cannot send as fast as the hub publishes.
    QueueFull,
}

/// Counters of a backend, since the hub started.
///
/// ```
/// let stats = sockjet_hub::Hub::new().stats().backend;
/// assert_eq!(stats.published, 0);
/// ```
#[derive(Clone, Copy, Debug, Default, Eq, PartialEq)]
#[non_exhaustive]
pub struct BackendStats {
    /// Whether the backend is connected to the other processes now (always false for
    /// [`InProcess`]).
    pub connected: bool,
    /// Messages sent to the other processes.
    pub published: u64,
    /// Messages that could not be sent (disconnected, queue full, or lost with the
    /// connection).
    pub failed: u64,
    /// Messages received from the backend, the hub's own echoes included.
    pub received: u64,
    /// Messages received that were not valid hub envelopes, ignored.
    pub malformed: u64,
}

/// Carries messages between the hubs of several processes.
///
/// A hub calls these methods while it holds its own locks: they must not block or wait
/// (queue work for a task of the backend's own instead).
pub trait Backend: Send + Sync + 'static {
    /// Starts the backend for the hub `inbox` delivers to; called once, by
    /// [`HubBuilder::build`](crate::HubBuilder::build), inside the tokio runtime.
    fn start(&self, inbox: RemoteInbox);

    /// The hub now has local members in `topic`: receive its messages from other
    /// processes.
    fn subscribe(&self, topic: &str);

    /// The hub has no local member in `topic` any more.
    fn unsubscribe(&self, topic: &str);

    /// Sends `message` to `topic`'s members in other processes, tagged with the hub's id
    /// ([`RemoteInbox::origin`]).
    fn publish(&self, topic: &str, message: &Message) -> RemoteDelivery;

    /// The backend's counters.
    fn stats(&self) -> BackendStats {
        BackendStats::default()
    }
}

/// The default backend: none. Messages reach the members of this process only.
///
/// ```
/// let hub = sockjet_hub::Hub::builder().backend(sockjet_hub::InProcess).build();
/// # let _ = hub;
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct InProcess;

impl Backend for InProcess {
    fn start(&self, _inbox: RemoteInbox) {}

    fn subscribe(&self, _topic: &str) {}

    fn unsubscribe(&self, _topic: &str) {}

    fn publish(&self, _topic: &str, _message: &Message) -> RemoteDelivery {
        RemoteDelivery::InProcessOnly
    }
}

/// Where a backend delivers the messages it receives: the local members of a hub. It does
/// not keep the hub alive.
#[derive(Clone)]
pub struct RemoteInbox {
    pub(crate) hub: Weak<HubInner>,
    pub(crate) origin: HubId,
}

impl fmt::Debug for RemoteInbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteInbox")
            .field("origin", &self.origin)
            .finish()
    }
}

impl RemoteInbox {
    /// The id of the hub: what its backend tags its messages with.
    pub fn origin(&self) -> HubId {
        self.origin
    }

    /// Whether the hub still exists (a backend's tasks stop when it does not).
    pub fn is_open(&self) -> bool {
        self.hub.strong_count() > 0
    }

    /// Delivers `message`, published to `topic` by hub `origin`, to the local members of
    /// `topic`. Returns `None`, delivering nothing, if `origin` is this hub (its members
    /// had the message when it was published) or if the hub is gone.
    pub fn deliver(&self, origin: HubId, topic: &str, message: Message) -> Option<BroadcastReport> {
        let hub = self.hub.upgrade()?;
        hub.deliver_remote(origin, topic, message)
    }
}
