//! Accepting and serving connections with bounds, so that clients that connect and then send
//! nothing, or one byte at a time, cannot hold the server's file descriptors (slowloris).
//!
//! - Request headers must arrive whole within the header timeout (on HTTP/1.1 the clock also
//!   runs while a kept-alive connection waits for its next request).
//! - A connection with no request in flight for the idle timeout is closed (HTTP/2 with a GOAWAY).
//! - At most `max_connections` are open; by default that is the process's file-descriptor limit
//!   less a reserve for the database and logs. At the cap, the oldest connection with no request
//!   in flight is dropped to make room, and nothing more is accepted until its descriptor is
//!   freed; when every connection is busy, the new one is closed.
//! - HTTP/2 (cleartext with prior knowledge, or by ALPN over TLS) has bounded streams, header
//!   lists and reset floods.
//!
//! The whole-request timeout is a layer of the router ([`super::routes`]), not of this module.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

/// How long a request's headers may take to arrive, by default.
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a connection may stay without a request in flight, by default.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a whole request (body read, work and answer) may take, by default.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// The most concurrent streams of one HTTP/2 connection, by default.
pub const DEFAULT_HTTP2_MAX_STREAMS: u32 = 64;

/// File descriptors kept free for the database, logs and the provisioner when the connection cap
/// is derived from the process's limit.
pub const RESERVED_FDS: usize = 64;

/// The connection cap used when the file-descriptor limit is unknown or very large.
pub const MAX_CONNECTIONS_CEILING: usize = 4096;

/// Largest header list of one HTTP/2 request (HTTP/1.1 is bounded by hyper's buffer, 400 KiB,
/// and 100 headers).
const HTTP2_MAX_HEADER_LIST: u32 = 64 * 1024;

/// How a server bounds its connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// A request's headers must arrive whole within this.
    pub header_timeout: Duration,
    /// A connection with no request in flight for this long is closed.
    pub idle_timeout: Duration,
    /// A request taking longer than this is answered 408.
    pub request_timeout: Duration,
    /// The most open connections; `None` derives it from the file-descriptor limit.
    pub max_connections: Option<usize>,
    /// The most concurrent streams of one HTTP/2 connection.
    pub http2_max_streams: u32,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            header_timeout: DEFAULT_HEADER_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            max_connections: None,
            http2_max_streams: DEFAULT_HTTP2_MAX_STREAMS,
        }
    }
}

impl ConnectionLimits {
    /// The connection cap: the one configured, else the soft file-descriptor limit less
    /// [`RESERVED_FDS`], at most [`MAX_CONNECTIONS_CEILING`] and at least 1.
    pub fn effective_max_connections(&self) -> usize {
        self.max_connections.unwrap_or_else(|| {
            let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile)
                .current
                .and_then(|limit| usize::try_from(limit).ok())
                .unwrap_or(MAX_CONNECTIONS_CEILING + RESERVED_FDS);
            limit
                .saturating_sub(RESERVED_FDS)
                .clamp(1, MAX_CONNECTIONS_CEILING)
        })
    }
}

/// Turns an accepted TCP stream into the stream HTTP is spoken on (TLS, or the stream itself).
pub(crate) trait Acceptor: Clone + Send + Sync + 'static {
    /// The stream HTTP is spoken on.
    type Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    /// Completes the handshake, if any; `None` drops the connection.
    fn accept(
        &self,
        stream: tokio::net::TcpStream,
    ) -> impl Future<Output = Option<Self::Stream>> + Send;
}

/// Plain TCP: HTTP/1.1, or HTTP/2 with prior knowledge (h2c).
#[derive(Clone)]
pub(crate) struct PlainTcp;

impl Acceptor for PlainTcp {
    type Stream = tokio::net::TcpStream;
    async fn accept(&self, stream: tokio::net::TcpStream) -> Option<Self::Stream> {
        Some(stream)
    }
}

/// What the registry knows of one open connection.
struct Tracked {
    in_flight: Arc<AtomicUsize>,
    evict: CancellationToken,
}

/// The open connections, oldest first, so that the oldest idle one can be dropped at the cap.
#[derive(Default)]
struct Registry {
    next_id: u64,
    open: BTreeMap<u64, Tracked>,
}

impl Registry {
    /// Drops the oldest connection with no request in flight; false when every connection is busy.
    /// The dropped connection keeps its slot until its task has closed it.
    fn evict_oldest_idle(&mut self) -> bool {
        let idle = self
            .open
            .iter()
            .find(|(_, tracked)| tracked.in_flight.load(Ordering::Acquire) == 0)
            .map(|(id, _)| *id);
        match idle.and_then(|id| self.open.remove(&id)) {
            Some(tracked) => {
                tracked.evict.cancel();
                true
            }
            None => false,
        }
    }
}

/// Serves `router` on `listener` within `limits` until `shutdown` completes, then lets in-flight
/// requests finish.
pub(crate) async fn serve<A: Acceptor>(
    listener: TcpListener,
    acceptor: A,
    router: axum::Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let cap = limits.effective_max_connections();
    tracing::info!(
        max_connections = cap,
        header_timeout_ms = limits.header_timeout.as_millis() as u64,
        idle_timeout_ms = limits.idle_timeout.as_millis() as u64,
        "connection limits"
    );
    let builder = Arc::new(http_builder(&limits));
    let registry = Arc::new(Mutex::new(Registry::default()));
    // One slot per open connection, held by its task until the stream is dropped: evicted
    // connections count until their descriptors are really freed, however busy the runtime.
    let slots = Arc::new(Semaphore::new(cap));
    let stopping = CancellationToken::new();
    let tracker = TaskTracker::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors (or a transient error): wait for some to be freed
                    // instead of spinning.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        // Answers are written whole; Nagle's algorithm would only delay them.
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "cannot set TCP_NODELAY");
        }
        let slot = match Arc::clone(&slots).try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => {
                let evicted = registry
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .evict_oldest_idle();
                if !evicted {
                    tracing::warn!(%peer, max_connections = cap, "connection refused: every connection is busy");
                    drop(stream);
                    continue;
                }
                // The evicted connection closes at once; wait for its slot before accepting more.
                tokio::select! {
                    () = &mut shutdown => break,
                    slot = Arc::clone(&slots).acquire_owned() => match slot {
                        Ok(slot) => slot,
                        Err(_) => break,
                    },
                }
            }
        };
        let in_flight = Arc::new(AtomicUsize::new(0));
        let evict = CancellationToken::new();
        let id = {
            let mut registry = registry.lock().unwrap_or_else(PoisonError::into_inner);
            let id = registry.next_id;
            registry.next_id += 1;
            registry.open.insert(
                id,
                Tracked {
                    in_flight: Arc::clone(&in_flight),
                    evict: evict.clone(),
                },
            );
            id
        };
        let connection = Connection {
            builder: Arc::clone(&builder),
            router: router.clone(),
            peer,
            in_flight,
            stopping: stopping.clone(),
            idle_timeout: limits.idle_timeout,
        };
        let acceptor = acceptor.clone();
        let registry = Arc::clone(&registry);
        tracker.spawn(async move {
            let serve = async {
                // The handshake is bounded like the headers that follow it.
                let accepted = tokio::time::timeout(limits.header_timeout, acceptor.accept(stream));
                if let Ok(Some(stream)) = accepted.await {
                    connection.run(stream).await;
                }
            };
            tokio::select! {
                () = serve => {}
                // Dropped to make room for a new connection: closed at once, even mid-handshake.
                () = evict.cancelled() => {
                    tracing::debug!(%peer, "idle connection dropped at the connection cap");
                }
            }
            drop(slot);
            registry
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .open
                .remove(&id);
        });
    }
    drop(listener);
    stopping.cancel();
    tracker.close();
    tracker.wait().await;
}

/// The HTTP/1.1 and HTTP/2 settings of every connection.
fn http_builder(limits: &ConnectionLimits) -> Builder<TokioExecutor> {
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_headers(100);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.http2_max_streams)
        .max_header_list_size(HTTP2_MAX_HEADER_LIST)
        .max_pending_accept_reset_streams(Some(20))
        .max_local_error_reset_streams(Some(256))
        // A peer that stops answering pings is gone: its connection is closed.
        .keep_alive_interval(Some(limits.idle_timeout / 2))
        .keep_alive_timeout(Duration::from_secs(20));
    builder
}

/// One accepted connection and what it needs to be served and bounded.
struct Connection {
    builder: Arc<Builder<TokioExecutor>>,
    router: axum::Router,
    peer: SocketAddr,
    in_flight: Arc<AtomicUsize>,
    stopping: CancellationToken,
    idle_timeout: Duration,
}

impl Connection {
    async fn run<S>(self, stream: S)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let last_active = Arc::new(Mutex::new(Instant::now()));
        let service = {
            let router = self.router;
            let peer = self.peer;
            let in_flight = Arc::clone(&self.in_flight);
            let last_active = Arc::clone(&last_active);
            hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
                request.extensions_mut().insert(ConnectInfo(peer));
                let router = router.clone();
                let guard = InFlight::start(Arc::clone(&in_flight), Arc::clone(&last_active));
                async move {
                    let response = router.oneshot(request.map(axum::body::Body::new)).await;
                    drop(guard);
                    Ok::<_, Infallible>(response.unwrap_or_else(|never| match never {}))
                }
            })
        };
        let connection = self
            .builder
            .serve_connection_with_upgrades(TokioIo::new(stream), service);
        tokio::pin!(connection);
        let mut closing = false;
        loop {
            let idle_deadline =
                *last_active.lock().unwrap_or_else(PoisonError::into_inner) + self.idle_timeout;
            tokio::select! {
                result = connection.as_mut() => {
                    if let Err(error) = result {
                        tracing::debug!(peer = %self.peer, error = %error, "connection ended");
                    }
                    return;
                }
                () = self.stopping.cancelled(), if !closing => {
                    connection.as_mut().graceful_shutdown();
                    closing = true;
                }
                () = tokio::time::sleep_until(idle_deadline), if !closing => {
                    let idle = self.in_flight.load(Ordering::Acquire) == 0;
                    let since = last_active.lock().unwrap_or_else(PoisonError::into_inner).elapsed();
                    if idle && since >= self.idle_timeout {
                        connection.as_mut().graceful_shutdown();
                        closing = true;
                    } else if !idle {
                        // Busy: look again one idle timeout after now.
                        *last_active.lock().unwrap_or_else(PoisonError::into_inner) = Instant::now();
                    }
                }
            }
        }
    }
}

/// Counts a request as in flight until dropped, then marks the connection active now.
struct InFlight {
    in_flight: Arc<AtomicUsize>,
    last_active: Arc<Mutex<Instant>>,
}

impl InFlight {
    fn start(in_flight: Arc<AtomicUsize>, last_active: Arc<Mutex<Instant>>) -> Self {
        in_flight.fetch_add(1, Ordering::AcqRel);
        Self {
            in_flight,
            last_active,
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        *self
            .last_active
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Instant::now();
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tracked(in_flight: usize) -> (Tracked, CancellationToken) {
        let evict = CancellationToken::new();
        (
            Tracked {
                in_flight: Arc::new(AtomicUsize::new(in_flight)),
                evict: evict.clone(),
            },
            evict,
        )
    }

    #[test]
    fn the_oldest_idle_connection_is_evicted_and_busy_ones_never() {
        let mut registry = Registry::default();
        let (busy, busy_evict) = tracked(1);
        let (idle_old, old_evict) = tracked(0);
        let (idle_new, new_evict) = tracked(0);
        registry.open.insert(0, busy);
        registry.open.insert(1, idle_old);
        registry.open.insert(2, idle_new);
        assert!(registry.evict_oldest_idle());
        assert!(old_evict.is_cancelled(), "the oldest idle one goes");
        assert!(!busy_evict.is_cancelled() && !new_evict.is_cancelled());
        assert_eq!(registry.open.len(), 2);
        registry.open.remove(&2);
        assert!(!registry.evict_oldest_idle(), "every connection is busy");
        assert!(!busy_evict.is_cancelled());
    }

    #[test]
    fn the_default_cap_leaves_room_below_the_fd_limit() {
        let limits = ConnectionLimits::default();
        let cap = limits.effective_max_connections();
        assert!((1..=MAX_CONNECTIONS_CEILING).contains(&cap));
        let configured = ConnectionLimits {
            max_connections: Some(7),
            ..limits
        };
        assert_eq!(configured.effective_max_connections(), 7);
    }
}
