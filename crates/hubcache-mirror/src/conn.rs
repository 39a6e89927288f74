//! One client connection: HTTP/1.1 (hyper) with the mirror's timeouts.
//!
//! hyper's own `header_read_timeout` starts when the connection begins to wait for a request,
//! so it cannot tell an idle keep-alive connection (fine for a while) from a client dripping a
//! header (not fine). Instead each connection records its [`Phase`], moved on by the socket
//! (first byte of a request, bytes written), the service (request handled, response sent)
//! and the response body (dropped when fully sent); a watchdog closes the connection when the
//! phase's bound passes. See [`ConnectionLimits`] for the bounds.

use std::convert::Infallible;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use axum::body::Body;
use axum::http::Request;
use bytes::Bytes;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{watch, Notify, OwnedSemaphorePermit};
use tokio::time::Instant;

use crate::config::ConnectionLimits;
use crate::server::{handle, Mirror};

/// Where a connection is in its request cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// No request under way: just accepted, or between keep-alive requests.
    Waiting,
    /// Bytes of a request head have arrived; the head is not complete.
    ReadingHead,
    /// The mirror works on a request (may pull a large file from upstream: no bound).
    Handling,
    /// The response body is being sent.
    Sending,
}

/// A connection's phase and when it began (or, while sending, when bytes last went out).
struct Activity {
    state: Mutex<(Phase, Instant)>,
    /// Wakes the watchdog on a phase change: the new phase's deadline may be earlier
    /// (waiting → reading a head) than the one it sleeps towards.
    changed: Notify,
}

impl Activity {
    fn new() -> Arc<Self> {
        Arc::new(Activity {
            state: Mutex::new((Phase::Waiting, Instant::now())),
            changed: Notify::new(),
        })
    }

    fn set(&self, phase: Phase) {
        if let Ok(mut s) = self.state.lock() {
            *s = (phase, Instant::now());
        }
        self.changed.notify_one();
    }

    /// Moves `from` → `to` (restarting the clock), or only restarts it when `to == from`
    /// (a later deadline: the watchdog finds it when it wakes).
    fn advance(&self, from: Phase, to: Phase) {
        let moved = match self.state.lock() {
            Ok(mut s) if s.0 == from => {
                *s = (to, Instant::now());
                from != to
            }
            _ => false,
        };
        if moved {
            self.changed.notify_one();
        }
    }

    /// When the connection must be closed, if its phase has a bound.
    fn deadline(&self, limits: &ConnectionLimits) -> Option<Instant> {
        let (phase, since) = *self.state.lock().ok()?;
        match phase {
            Phase::Waiting | Phase::Sending => Some(since + limits.idle_timeout),
            Phase::ReadingHead => Some(since + limits.header_timeout),
            Phase::Handling => None,
        }
    }

    /// Resolves when the current phase's bound has passed.
    async fn expired(&self, limits: ConnectionLimits) {
        loop {
            let changed = self.changed.notified();
            match self.deadline(&limits) {
                Some(d) if d <= Instant::now() => return,
                Some(d) => {
                    tokio::select! {
                        () = tokio::time::sleep_until(d) => {}
                        () = changed => {}
                    }
                }
                // No bound while handling: wait for the answer.
                None => changed.await,
            }
        }
    }
}

/// The socket, reporting reads and writes to the connection's [`Activity`].
struct TrackedIo {
    tcp: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for TrackedIo {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.tcp).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            // The header clock starts at a request's first byte, not when waiting began.
            self.activity.advance(Phase::Waiting, Phase::ReadingHead);
        }
        r
    }
}

impl AsyncWrite for TrackedIo {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.tcp).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.advance(Phase::Sending, Phase::Sending);
        }
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.tcp).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.advance(Phase::Sending, Phase::Sending);
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}

/// A response body that marks the connection as waiting again once hyper is done with it
/// (sent in full, or abandoned).
struct TrackedBody {
    inner: Body,
    activity: Arc<Activity>,
}

impl Drop for TrackedBody {
    fn drop(&mut self) {
        self.activity.set(Phase::Waiting);
    }
}

impl hyper::body::Body for TrackedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Serves one accepted connection until the client leaves, a bound passes, or shutdown
/// (graceful: the request under way finishes). Holds its connection slot until then.
pub(crate) async fn serve(
    mirror: Arc<Mirror>,
    tcp: TcpStream,
    mut stop: watch::Receiver<bool>,
    _slot: OwnedSemaphorePermit,
) {
    let limits = *mirror.limits();
    let activity = Activity::new();
    let io = TokioIo::new(TrackedIo {
        tcp,
        activity: activity.clone(),
    });
    let service_activity = activity.clone();
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        let (mirror, activity) = (mirror.clone(), service_activity.clone());
        async move {
            activity.set(Phase::Handling);
            let resp = handle(&mirror, req.map(Body::new)).await;
            activity.set(Phase::Sending);
            Ok::<_, Infallible>(resp.map(|inner| TrackedBody { inner, activity }))
        }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        // Our watchdog bounds the head (hyper's clock would include keep-alive idle time).
        .header_read_timeout(None)
        .serve_connection(io, service);
    tokio::pin!(conn);
    let mut draining = *stop.borrow();
    if draining {
        conn.as_mut().graceful_shutdown();
    }
    loop {
        tokio::select! {
            // Errors here are the client's (reset, malformed request): nothing to report.
            _ = conn.as_mut() => return,
            () = activity.expired(limits) => return, // Dropping the connection closes the socket.
            r = stop.changed(), if !draining => {
                draining = true;
                if r.is_ok() {
                    conn.as_mut().graceful_shutdown();
                }
            }
        }
    }
}
