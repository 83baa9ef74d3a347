//! Change events ([Events](super#events)): what other tier instances publish
//! ([`RemoteEvent`], [`ChangeKind`]), and their delivery to a callback by a background thread
//! that reconnects by itself ([`RedisL3Tier::subscribe`], [`Subscription`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use redis::RedisError;

use crate::error::TierError;

use super::pool::Connector;
use super::redact::Redactor;
use super::tier::RedisL3Tier;

/// Shortest wait before the event subscriber reconnects; it doubles up to
/// [`SUBSCRIBER_MAX_BACKOFF`].
const SUBSCRIBER_MIN_BACKOFF: Duration = Duration::from_millis(50);
/// Longest wait between two reconnection attempts of the event subscriber.
pub const SUBSCRIBER_MAX_BACKOFF: Duration = Duration::from_secs(1);
/// A subscribed connection silent for this long is checked with a `PING` (a server that
/// vanished without closing the connection is noticed within it plus the command timeout).
const SUBSCRIBER_KEEPALIVE: Duration = Duration::from_secs(1);

/// What changed an entry, in a [`RemoteEvent::Changed`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChangeKind {
    /// The entry was stored (new or replaced; a put of an entry already expired removes it),
    /// or marked by a failed health check below its threshold.
    Put,
    /// The entry was deleted (whether it was there or not).
    Delete,
    /// A health check of the entry was recorded.
    Health,
}

/// A change published by another tier instance on the namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemoteEvent {
    /// The entry under `key` changed: copies of it in upper tiers are stale.
    Changed {
        /// The entry's key.
        key: String,
        /// What changed it.
        kind: ChangeKind,
    },
    /// Every entry was removed.
    Cleared,
    /// The subscriber reconnected after losing its connection: events may have been missed,
    /// so any copy may be stale.
    Resync,
}

/// Reads one event message; `None` for a message of `own` origin or one that is not an event.
pub(super) fn parse_event(payload: &[u8], own: u64) -> Option<RemoteEvent> {
    let text = std::str::from_utf8(payload).ok()?;
    let mut parts = text.splitn(3, ' ');
    let origin = u64::from_str_radix(parts.next()?, 16).ok()?;
    if origin == own {
        return None;
    }
    let kind = parts.next()?;
    let key = parts.next()?;
    let kind = match kind {
        "clear" => return Some(RemoteEvent::Cleared),
        "put" => ChangeKind::Put,
        "del" => ChangeKind::Delete,
        "health" => ChangeKind::Health,
        _ => return None,
    };
    Some(RemoteEvent::Changed {
        key: key.to_owned(),
        kind,
    })
}

impl RedisL3Tier {
    /// Calls `on_event` with every change other tier instances (other hosts, other processes,
    /// other tiers of this process) publish on the namespace, from a background thread with
    /// its own connection, until the [`Subscription`] is dropped. The thread reconnects by
    /// itself when the connection is lost (backoff doubling from 50 ms to
    /// [`SUBSCRIBER_MAX_BACKOFF`]) and then calls `on_event(RemoteEvent::Resync)`: events may
    /// have been missed. `on_event` runs on that thread: it should be quick.
    ///
    /// Returns once subscribed (events published after that are delivered); errors with
    /// [`TierError::Remote`] when the server cannot be reached within about the timeouts.
    pub fn subscribe(&self, on_event: impl Fn(RemoteEvent) + Send + Sync + 'static) -> Result<Subscription, TierError> {
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = mpsc::channel();
        let subscriber = Subscriber {
            connector: Arc::clone(&self.connector),
            channel: self.names.channel.clone(),
            origin: self.origin,
            redactor: Arc::clone(&self.redactor),
            stop: Arc::clone(&stop),
        };
        let poll = subscriber.poll();
        let thread = std::thread::Builder::new()
            .name("pw-cache-redis-events".to_owned())
            .spawn(move || subscriber.run(&on_event, ready_tx))
            .map_err(|e| TierError::Remote {
                op: "subscribe",
                reason: format!("cannot start the subscriber thread: {e}"),
            })?;
        let subscription = Subscription {
            stop,
            thread: Some(thread),
        };
        let patience = self.connector.connect_timeout + self.connector.command_timeout * 2 + poll;
        match ready_rx.recv_timeout(patience) {
            Ok(Ok(())) => Ok(subscription),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(TierError::Remote {
                op: "subscribe",
                reason: format!("not subscribed within {patience:?}"),
            }),
        }
    }
}

/// The background thread of a [`Subscription`].
struct Subscriber {
    connector: Arc<Connector>,
    channel: String,
    origin: u64,
    redactor: Arc<Redactor>,
    stop: Arc<AtomicBool>,
}

impl Subscriber {
    /// How long one read waits before the thread looks at the stop flag.
    fn poll(&self) -> Duration {
        self.connector
            .command_timeout
            .clamp(Duration::from_millis(10), Duration::from_secs(1))
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    fn run(self, on_event: &(dyn Fn(RemoteEvent) + Send + Sync), ready: mpsc::Sender<Result<(), TierError>>) {
        let mut ready = Some(ready);
        let mut backoff = SUBSCRIBER_MIN_BACKOFF;
        while !self.stopped() {
            match self.connector.connect_raw() {
                Ok(mut conn) => {
                    let mut pubsub = conn.as_pubsub();
                    match pubsub
                        .subscribe(&self.channel)
                        .and_then(|()| pubsub.set_read_timeout(Some(self.poll())))
                    {
                        Ok(()) => {
                            backoff = SUBSCRIBER_MIN_BACKOFF;
                            match ready.take() {
                                Some(tx) => {
                                    let _ = tx.send(Ok(()));
                                }
                                None => {
                                    tracing::info!(channel = %self.channel, "resubscribed to cache events");
                                    deliver(on_event, RemoteEvent::Resync);
                                }
                            }
                            self.listen(&mut pubsub, on_event);
                        }
                        Err(e) => {
                            if self.fail_start(&mut ready, &e) {
                                return;
                            }
                        }
                    }
                }
                Err(e) => {
                    if self.fail_start(&mut ready, &e) {
                        return;
                    }
                }
            }
            // Wait before reconnecting, looking at the stop flag.
            let until = Instant::now() + backoff;
            while !self.stopped() && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(10).min(backoff));
            }
            backoff = (backoff * 2).min(SUBSCRIBER_MAX_BACKOFF);
        }
    }

    /// Reports a failure to subscribe: to the caller of `subscribe` the first time (then the
    /// thread ends: `true`), in the log afterwards.
    fn fail_start(&self, ready: &mut Option<mpsc::Sender<Result<(), TierError>>>, e: &RedisError) -> bool {
        let reason = self.redactor.clean(&e.to_string());
        match ready.take() {
            Some(tx) => {
                let _ = tx.send(Err(TierError::Remote {
                    op: "subscribe",
                    reason,
                }));
                true
            }
            None => {
                tracing::debug!(error = %reason, "cannot resubscribe to cache events yet");
                false
            }
        }
    }

    /// Delivers messages until the connection fails or the subscription stops.
    fn listen(&self, pubsub: &mut redis::PubSub<'_>, on_event: &(dyn Fn(RemoteEvent) + Send + Sync)) {
        let mut heard = Instant::now();
        while !self.stopped() {
            match pubsub.get_message() {
                Ok(msg) => {
                    heard = Instant::now();
                    if let Some(event) = parse_event(msg.get_payload_bytes(), self.origin) {
                        deliver(on_event, event);
                    }
                }
                Err(e) if e.is_timeout() => {
                    if heard.elapsed() >= SUBSCRIBER_KEEPALIVE {
                        if let Err(e) = pubsub.ping::<redis::Value>() {
                            self.lost(&e);
                            return;
                        }
                        heard = Instant::now();
                    }
                }
                Err(e) => {
                    self.lost(&e);
                    return;
                }
            }
        }
    }

    fn lost(&self, e: &RedisError) {
        if !self.stopped() {
            tracing::warn!(
                channel = %self.channel,
                error = %self.redactor.clean(&e.to_string()),
                "lost the cache events connection; reconnecting"
            );
        }
    }
}

/// Calls `on_event`, containing a panic of it (the subscription goes on).
fn deliver(on_event: &(dyn Fn(RemoteEvent) + Send + Sync), event: RemoteEvent) {
    if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| on_event(event))).is_err() {
        tracing::error!("a cache event handler panicked");
    }
}

/// Delivery of a tier's events ([`RedisL3Tier::subscribe`]); dropping it stops the background
/// thread and waits for it (about the command timeout at most).
#[derive(Debug)]
pub struct Subscription {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("the cache events thread panicked");
        }
    }
}
