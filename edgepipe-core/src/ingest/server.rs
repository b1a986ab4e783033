//! The ingest server (feature `ingest-server`): HTTP/1.1 with keep-alive, optional
//! TLS, around a [`Receiver`].
//!
//! hyper 1 serves the connections on a small tokio runtime owned by the server's
//! own thread; the public API stays synchronous ([`start`] returns once the socket
//! is bound, [`ServerHandle::shutdown`] returns once the connections are closed).
//! The receiver is synchronous and does blocking I/O (fsync), so each request runs
//! it inside `block_in_place`: on the worker thread that read the request, while
//! tokio moves that thread's other tasks to a spare one. At most `max_in_flight` ingest requests are read and
//! decoded at once, which bounds memory to about `max_in_flight` × (body limit +
//! decompressed limit + records) whatever the number of connections.
//!
//! ```
//! use std::sync::Arc;
//! use edgepipe_core::ingest::{Receiver, ReceiverConfig};
//! use edgepipe_core::ingest::server::{ServerConfig, start};
//!
//! let dir = tempfile::tempdir()?;
//! let receiver = Arc::new(Receiver::open(ReceiverConfig::new(["k1"]), dir.path())?);
//! let server = start(receiver, ServerConfig::new("127.0.0.1:0".parse()?))?;
//! assert_ne!(server.local_addr().port(), 0);
//! server.shutdown()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{Semaphore, oneshot, watch};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;

use super::receiver::{IngestRequest, Outcome, Receiver};
use crate::error::{Error, Result};

/// PEM files of the server's certificate chain and private key.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    /// Certificate chain, leaf first.
    pub cert: PathBuf,
    /// PKCS#8, PKCS#1 or SEC1 private key.
    pub key: PathBuf,
}

/// How the server listens.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Address to bind; port 0 picks a free one ([`ServerHandle::local_addr`]).
    pub listen: SocketAddr,
    /// Serve HTTPS with these files instead of plain HTTP.
    pub tls: Option<TlsFiles>,
    /// Ingest requests read and decoded at once (default 4).
    pub max_in_flight: usize,
    /// tokio worker threads (default 2).
    pub worker_threads: usize,
    /// Time allowed to send a request's headers, and then its body (default 30 s each).
    pub read_timeout: Duration,
}

impl ServerConfig {
    /// Plain HTTP on `listen` with the defaults.
    pub fn new(listen: SocketAddr) -> Self {
        ServerConfig {
            listen,
            tls: None,
            max_in_flight: 4,
            worker_threads: 2,
            read_timeout: Duration::from_secs(30),
        }
    }
}

/// A running server; [`shutdown`](ServerHandle::shutdown) stops it cleanly
/// (dropping the handle does too).
#[derive(Debug)]
pub struct ServerHandle {
    local_addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ServerHandle {
    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting, lets in-flight requests finish, closes idle keep-alive
    /// connections and joins the server thread.
    pub fn shutdown(mut self) -> Result<()> {
        self.stop_and_join()
    }

    /// Blocks until the server stops (it runs until shut down or the process ends).
    pub fn wait(mut self) -> Result<()> {
        // The stop sender stays alive (a dropped sender would stop the server).
        self.join()
    }

    fn stop_and_join(&mut self) -> Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.join()
    }

    fn join(&mut self) -> Result<()> {
        if let Some(thread) = self.thread.take() {
            thread
                .join()
                .map_err(|_| Error::io("ingest server", std::io::Error::other("panicked")))?;
        }
        Ok(())
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        let _ = self.stop_and_join();
    }
}

fn tls_acceptor(files: &TlsFiles) -> Result<TlsAcceptor> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let pem_error = |path: &PathBuf, e: rustls::pki_types::pem::Error| {
        Error::io(
            format!("reading {}", path.display()),
            std::io::Error::other(e.to_string()),
        )
    };
    let certs = CertificateDer::pem_file_iter(&files.cert)
        .and_then(|iter| iter.collect::<std::result::Result<Vec<_>, _>>())
        .map_err(|e| pem_error(&files.cert, e))?;
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| pem_error(&files.key, e))?;
    // ring, the workspace's one crypto provider, chosen explicitly.
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .and_then(|b| b.with_no_client_auth().with_single_cert(certs, key))
    .map_err(|e| Error::config("tls", e.to_string()))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Binds `config.listen` and serves `receiver` on a thread of its own.
pub fn start(receiver: Arc<Receiver>, config: ServerConfig) -> Result<ServerHandle> {
    let acceptor = config.tls.as_ref().map(tls_acceptor).transpose()?;
    let listener = std::net::TcpListener::bind(config.listen)
        .map_err(|e| Error::io(format!("binding {}", config.listen), e))?;
    let local_addr = listener
        .local_addr()
        .map_err(|e| Error::io("reading the bound address", e))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| Error::io("configuring the listener", e))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(config.worker_threads.max(1))
        .max_blocking_threads(config.max_in_flight.max(1) + 2)
        .thread_name("edgepipe-ingest")
        .enable_io()
        .enable_time()
        .build()
        .map_err(|e| Error::io("starting the ingest server's runtime", e))?;
    let (stop, stopped) = oneshot::channel();
    let thread = std::thread::Builder::new()
        .name("edgepipe-ingest".into())
        .spawn(move || runtime.block_on(serve(listener, acceptor, receiver, config, stopped)))
        .map_err(|e| Error::io("starting the ingest server's thread", e))?;
    Ok(ServerHandle {
        local_addr,
        stop: Some(stop),
        thread: Some(thread),
    })
}

async fn serve(
    listener: std::net::TcpListener,
    acceptor: Option<TlsAcceptor>,
    receiver: Arc<Receiver>,
    config: ServerConfig,
    mut stopped: oneshot::Receiver<()>,
) {
    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
        return;
    };
    let permits = Arc::new(Semaphore::new(config.max_in_flight.max(1)));
    let (closing, closing_rx) = watch::channel(false);
    let mut connections = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut stopped => break,
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let _ = stream.set_nodelay(true);
                let context = Context {
                    receiver: receiver.clone(),
                    permits: permits.clone(),
                    read_timeout: config.read_timeout,
                };
                let closing = closing_rx.clone();
                let acceptor = acceptor.clone();
                connections.spawn(async move {
                    match acceptor {
                        Some(acceptor) => {
                            // A failed handshake just drops the connection.
                            if let Ok(Ok(tls)) =
                                tokio::time::timeout(context.read_timeout, acceptor.accept(stream)).await
                            {
                                connection(tls, context, closing).await;
                            }
                        }
                        None => connection(stream, context, closing).await,
                    }
                });
            }
            // Reap finished connections so the set stays small.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    let _ = closing.send(true);
    while connections.join_next().await.is_some() {}
}

#[derive(Clone)]
struct Context {
    receiver: Arc<Receiver>,
    permits: Arc<Semaphore>,
    read_timeout: Duration,
}

async fn connection<S>(stream: S, context: Context, mut closing: watch::Receiver<bool>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let read_timeout = context.read_timeout;
    let service = service_fn(move |request| {
        let context = context.clone();
        async move { Ok::<_, std::convert::Infallible>(route(request, context).await) }
    });
    let conn = http1::Builder::new()
        .keep_alive(true)
        .timer(TokioTimer::new())
        .header_read_timeout(read_timeout)
        .serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => return,
        _ = closing.wait_for(|closing| *closing) => {}
    }
    // Finish the request in flight, then close (an idle connection closes at once).
    conn.as_mut().graceful_shutdown();
    let _ = conn.await;
}

fn json_response(status: u16, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    response
}

fn outcome_response(outcome: &Outcome) -> Response<Full<Bytes>> {
    let mut response = json_response(outcome.status(), outcome.body());
    if let Some(seconds) = outcome.retry_after() {
        response
            .headers_mut()
            .insert(hyper::header::RETRY_AFTER, seconds.into());
    }
    response
}

async fn route(request: Request<Incoming>, context: Context) -> Response<Full<Bytes>> {
    let path = request.uri().path();
    match (request.method(), path) {
        (&Method::GET, "/health") => json_response(200, r#"{"status":"ok"}"#.to_owned()),
        (&Method::GET, "/metrics") => {
            let mut response = Response::new(Full::new(Bytes::from(
                context.receiver.metrics().render_prometheus(),
            )));
            response.headers_mut().insert(
                hyper::header::CONTENT_TYPE,
                hyper::header::HeaderValue::from_static("text/plain; version=0.0.4"),
            );
            response
        }
        (&Method::POST, "/api/ingest") => ingest(request, context).await,
        (_, "/api/ingest" | "/health" | "/metrics") => {
            context.receiver.metrics().count_reject(405);
            json_response(405, r#"{"detail":"Method Not Allowed"}"#.to_owned())
        }
        _ => {
            context.receiver.metrics().count_reject(404);
            json_response(404, r#"{"detail":"Not Found"}"#.to_owned())
        }
    }
}

async fn ingest(request: Request<Incoming>, context: Context) -> Response<Full<Bytes>> {
    let receiver = &context.receiver;
    let (parts, mut body) = request.into_parts();
    let mut ingest = IngestRequest::default();
    for (name, value) in &parts.headers {
        if let Ok(value) = value.to_str() {
            ingest
                .headers
                .push((name.as_str().to_owned(), value.to_owned()));
        }
    }
    // Headers and API key before a byte of the body is read.
    if let Err(outcome) = receiver.authenticate(&ingest) {
        receiver.metrics().count_reject(outcome.status());
        return outcome_response(&outcome);
    }
    let Ok(_permit) = context.permits.acquire().await else {
        return json_response(503, r#"{"detail":"shutting down"}"#.to_owned());
    };
    let limit = receiver.config().limits.max_compressed_bytes;
    let too_large = |size: usize| {
        let outcome = Outcome::TooLarge {
            detail: Error::CompressedTooLarge { size, limit }.to_string(),
        };
        receiver.metrics().count_reject(413);
        outcome_response(&outcome)
    };
    let declared = parts
        .headers
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(length) = declared
        && length > limit as u64
    {
        return too_large(usize::try_from(length).unwrap_or(usize::MAX));
    }
    // Stream the body, stopping at the limit: a chunked body never declares its size.
    let mut bytes = Vec::with_capacity(declared.map_or(0, |l| l as usize).min(limit));
    let read = tokio::time::timeout(context.read_timeout, async {
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|_| ())?;
            if let Ok(data) = frame.into_data() {
                if bytes.len() + data.len() > limit {
                    return Ok(Some(bytes.len() + data.len()));
                }
                bytes.extend_from_slice(&data);
            }
        }
        Ok::<_, ()>(None)
    })
    .await;
    match read {
        Ok(Ok(None)) => {}
        Ok(Ok(Some(size))) => return too_large(size),
        Ok(Err(())) => {
            receiver.metrics().count_reject(400);
            return json_response(
                400,
                r#"{"detail":"request body could not be read"}"#.to_owned(),
            );
        }
        Err(_) => {
            receiver.metrics().count_reject(408);
            return json_response(408, r#"{"detail":"request body timed out"}"#.to_owned());
        }
    }
    ingest.body = bytes;
    // The receiver's work (inflate, parse, sync the store) runs on this worker
    // thread, which hands its other tasks to a new worker meanwhile: a batch costs
    // no hop to the blocking pool and back (two thread wake-ups each way).
    let handled = tokio::task::block_in_place(|| {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            context.receiver.handle(&ingest)
        }))
    });
    match handled {
        Ok(outcome) => outcome_response(&outcome),
        Err(_) => {
            let outcome = Outcome::Unavailable {
                detail: "the receiver failed".to_owned(),
                retry_after_seconds: context.receiver.config().retry_after_seconds,
            };
            context.receiver.metrics().count_reject(503);
            outcome_response(&outcome)
        }
    }
}
