//! A small HTTP/1.1 ingest server for the HTTP sink's tests: TLS (rustls on ring,
//! a self-signed certificate made by rcgen) or plain, on a loopback port, one
//! thread per connection, keep-alive. By default it answers as the protocol says
//! (API key, HMAC signature, checksum, duplicates by batch id); a test can script
//! the next answers instead. It records every request and counts connections.

#![allow(dead_code)] // each test file uses a part

use std::collections::{HashMap, HashSet, VecDeque};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;

use hmac::{Hmac, KeyInit, Mac};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use sha2::{Digest, Sha256};

pub const API_KEY: &str = "valid-api-key";

/// A request as the server read it; header names lowercased.
#[derive(Clone, Debug)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
    /// Which accepted connection (0-based) carried it.
    pub connection: usize,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
}

/// What the server does with the next request.
#[derive(Clone, Debug)]
pub enum Reply {
    /// Answer as the protocol says.
    Protocol,
    /// This status, extra headers and body.
    Fixed {
        status: u16,
        headers: Vec<(String, String)>,
        body: String,
    },
    /// Read the request, then close the connection without a word.
    Close,
    /// Answer as the protocol says, then close the connection (as a server
    /// does when its keep-alive idle timeout runs out).
    AnswerThenClose,
    /// Read the request and never answer (until the client goes away).
    Hang,
}

impl Reply {
    pub fn fixed(status: u16, body: &str) -> Reply {
        Reply::Fixed {
            status,
            headers: Vec::new(),
            body: body.to_owned(),
        }
    }

    pub fn with_header(self, name: &str, value: &str) -> Reply {
        match self {
            Reply::Fixed {
                status,
                mut headers,
                body,
            } => {
                headers.push((name.to_owned(), value.to_owned()));
                Reply::Fixed {
                    status,
                    headers,
                    body,
                }
            }
            other => other,
        }
    }
}

/// The self-signed certificate a TLS server presents (for 127.0.0.1 and localhost).
pub struct Identity {
    pub cert_pem: String,
    cert_der: CertificateDer<'static>,
    key_der: Vec<u8>,
}

impl Identity {
    pub fn new() -> Identity {
        let certified = rcgen::generate_simple_self_signed(vec![
            "127.0.0.1".to_owned(),
            "localhost".to_owned(),
        ])
        .expect("rcgen makes a certificate");
        Identity {
            cert_pem: certified.cert.pem(),
            cert_der: certified.cert.der().clone(),
            key_der: certified.signing_key.serialize_der(),
        }
    }

    fn server_config(&self) -> Arc<rustls::ServerConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("ring supports the default versions")
            .with_no_client_auth()
            .with_single_cert(
                vec![self.cert_der.clone()],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der.clone())),
            )
            .expect("a valid certificate and key");
        Arc::new(config)
    }
}

struct State {
    hmac_key: Option<Vec<u8>>,
    script: Mutex<VecDeque<Reply>>,
    requests: Mutex<Vec<Request>>,
    stored: Mutex<HashSet<String>>,
    connections: AtomicUsize,
    closed: Mutex<usize>,
    closed_changed: Condvar,
}

/// A running server; its threads end with the test process.
pub struct TestServer {
    pub port: u16,
    state: Arc<State>,
}

impl TestServer {
    /// An HTTPS server presenting `identity`'s certificate.
    pub fn https(identity: &Identity, hmac_key: Option<&[u8]>) -> TestServer {
        Self::start(Some(identity.server_config()), hmac_key)
    }

    /// A plain HTTP server.
    pub fn http(hmac_key: Option<&[u8]>) -> TestServer {
        Self::start(None, hmac_key)
    }

    fn start(tls: Option<Arc<rustls::ServerConfig>>, hmac_key: Option<&[u8]>) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(State {
            hmac_key: hmac_key.map(<[u8]>::to_vec),
            script: Mutex::new(VecDeque::new()),
            requests: Mutex::new(Vec::new()),
            stored: Mutex::new(HashSet::new()),
            connections: AtomicUsize::new(0),
            closed: Mutex::new(0),
            closed_changed: Condvar::new(),
        });
        let accept_state = Arc::clone(&state);
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let _ = stream.set_nodelay(true);
                let connection = accept_state.connections.fetch_add(1, Ordering::SeqCst);
                let state = Arc::clone(&accept_state);
                let tls = tls.clone();
                thread::spawn(move || {
                    // A client that gives up (bad certificate, timeout) ends the
                    // connection with an error: nothing to report.
                    let _ = serve_connection(stream, tls, &state, connection);
                    *state.closed.lock().unwrap() += 1;
                    state.closed_changed.notify_all();
                });
            }
        });
        TestServer { port, state }
    }

    pub fn https_url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    pub fn http_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Queues the answers to the next requests, in order.
    pub fn script(&self, replies: impl IntoIterator<Item = Reply>) {
        self.state.script.lock().unwrap().extend(replies);
    }

    pub fn requests(&self) -> Vec<Request> {
        self.state.requests.lock().unwrap().clone()
    }

    pub fn connections(&self) -> usize {
        self.state.connections.load(Ordering::SeqCst)
    }

    /// Blocks until the server has closed `count` connections.
    pub fn wait_closed(&self, count: usize) {
        let mut closed = self.state.closed.lock().unwrap();
        while *closed < count {
            closed = self.state.closed_changed.wait(closed).unwrap();
        }
    }

    pub fn stored(&self) -> usize {
        self.state.stored.lock().unwrap().len()
    }
}

fn serve_connection(
    stream: TcpStream,
    tls: Option<Arc<rustls::ServerConfig>>,
    state: &State,
    connection: usize,
) -> io::Result<()> {
    match tls {
        Some(config) => {
            let session = rustls::ServerConnection::new(config).map_err(io::Error::other)?;
            serve(rustls::StreamOwned::new(session, stream), state, connection)
        }
        None => serve(stream, state, connection),
    }
}

fn serve<S: Read + Write>(stream: S, state: &State, connection: usize) -> io::Result<()> {
    let mut reader = BufReader::new(stream);
    loop {
        let Some(request) = read_request(&mut reader, connection)? else {
            return Ok(()); // the client closed the connection between requests
        };
        let reply = state
            .script
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or(Reply::Protocol);
        let close_after = matches!(reply, Reply::AnswerThenClose);
        let (status, headers, body) = match reply {
            Reply::Protocol | Reply::AnswerThenClose => {
                let (status, body) = protocol_answer(&request, state);
                (status, Vec::new(), body)
            }
            Reply::Fixed {
                status,
                headers,
                body,
            } => (status, headers, body),
            Reply::Close => {
                state.requests.lock().unwrap().push(request);
                return Ok(());
            }
            Reply::Hang => {
                state.requests.lock().unwrap().push(request);
                // Blocks until the client closes its end.
                let mut rest = Vec::new();
                let _ = reader.read_to_end(&mut rest);
                return Ok(());
            }
        };
        state.requests.lock().unwrap().push(request);
        let stream = reader.get_mut();
        let mut head = format!(
            "HTTP/1.1 {status} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n",
            reason(status),
            body.len()
        );
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        // One write: a head and a body in two small segments would wait for the
        // client's delayed ACK under Nagle's algorithm (40 ms per answer).
        head.push_str(&body);
        stream.write_all(head.as_bytes())?;
        stream.flush()?;
        if close_after {
            return Ok(());
        }
    }
}

fn read_request<R: BufRead>(reader: &mut R, connection: usize) -> io::Result<Option<Request>> {
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_owned();
    let path = parts.next().unwrap_or_default().to_owned();
    let mut headers = HashMap::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let line = line.trim_end_matches(['\r', '\n']);
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_owned());
        }
    }
    let length: usize = headers
        .get("content-length")
        .and_then(|value| value.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    Ok(Some(Request {
        method,
        path,
        headers,
        body,
        connection,
    }))
}

/// The protocol's answer, in the seed's shapes.
fn protocol_answer(request: &Request, state: &State) -> (u16, String) {
    let detail = |text: &str| format!("{{\"detail\":\"{text}\"}}");
    if request.method != "POST" || request.path != "/api/ingest" {
        return (404, detail("Not Found"));
    }
    let (Some(key), Some(batch_id)) = (request.header("x-api-key"), request.header("x-batch-id"))
    else {
        return (422, detail("missing header"));
    };
    if key != API_KEY {
        return (401, detail("Invalid API key"));
    }
    if let Some(hmac_key) = &state.hmac_key {
        let expected = signature(hmac_key, batch_id, &request.body);
        if request.header("x-edgepipe-signature") != Some(expected.as_str()) {
            return (401, detail("Invalid signature"));
        }
    }
    if let Some(checksum) = request.header("x-edgepipe-checksum")
        && checksum != sha256_hex(&request.body)
    {
        return (400, detail("checksum mismatch"));
    }
    if !state.stored.lock().unwrap().insert(batch_id.to_owned()) {
        return (
            200,
            format!("{{\"status\":\"duplicate\",\"batch_id\":\"{batch_id}\"}}"),
        );
    }
    let records = request.header("x-edgepipe-records").unwrap_or("0");
    (
        200,
        format!(
            "{{\"status\":\"ok\",\"batch_id\":\"{batch_id}\",\"records_accepted\":{records},\
             \"records_quarantined\":0,\"records_duplicate\":0}}"
        ),
    )
}

/// `sha256=<hex HMAC-SHA256(key, batch_id || "\n" || body)>`, computed here
/// independently of the sink.
pub fn signature(key: &[u8], batch_id: &str, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).unwrap();
    mac.update(format!("{batch_id}\n").as_bytes());
    mac.update(body);
    format!("sha256={}", to_hex(&mac.finalize().into_bytes()))
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    to_hex(&Sha256::digest(bytes))
}

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        429 => "Too Many Requests",
        503 => "Service Unavailable",
        _ => "Status",
    }
}
