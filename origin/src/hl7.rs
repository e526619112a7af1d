//! HL7 v2 ingestion: one ER7 message in, its `ACK` out — through `POST /api/hl7/v2` or the MLLP listener
//! (`serve --mllp ADDR`). The message is parsed with the `er7` crate; which beds change to which status, the
//! answer and what counts as a repeat are `hhs_core::hl7`'s rules, and who may send over MLLP `hhs_core::mllp`'s.
//! A message is attributed to the integration principal that sent it (an API key's, or a client
//! certificate's), and its repeats are kept under that principal: the same content again gets the stored ACK and
//! is applied once; a control id reused with other content is `AR`. A message's beds and its record commit in one
//! transaction (`Hl7Store::hl7_ingest`). Every message applied or refused is in the audit trail (`hl7_received`:
//! control id, type, sender, outcome, the beds it set) — never a patient segment, and nothing of it in the logs
//! but its control id; a repeat answered from the record is not logged again (debug only).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hhs_core::hl7::{ack, plan, AckCode, BedMapping, Inbound};
use hhs_core::mllp::{ClientMap, Refused, Transport};
use hhs_core::wire::{AuthFailedDetail, Detail, EventView, LogKind};
use hhs_core::{Millis, ResourceType};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_rustls::rustls;
use tokio_util::sync::CancellationToken;

use crate::store::{Actor, DynStore, Hl7Message, StoreError};

/// MLLP framing: a message is `0x0B` … `0x1C 0x0D`.
const START: u8 = 0x0B;
const END: [u8; 2] = [0x1C, 0x0D];
/// The largest message taken (as the HTTP body limit).
pub const MAX_MESSAGE: usize = 64 * 1024;

/// What every message is read with: which resources beds are, and how long repeats are remembered.
#[derive(Clone, Debug)]
pub struct Hl7Config {
    pub mapping: BedMapping,
    pub window: Millis,
}

impl Default for Hl7Config {
    fn default() -> Self {
        Hl7Config { mapping: BedMapping::default(), window: hhs_core::hl7::DEFAULT_REPEAT_WINDOW }
    }
}

/// The fields of `text` that the rules read; `Err` (with why) when it is not an HL7 v2 message at all.
pub fn read(text: &str) -> Result<Inbound, String> {
    let m = er7::parse(text).map_err(|e| format!("not an HL7 v2 message: {e}"))?;
    let get = |path: &str| m.query(path).ok().flatten().unwrap_or_default();
    let location = |field: &str| -> Option<Vec<String>> {
        let parts: Vec<String> = (1..=3).map(|c| get(&format!("{field}.{c}"))).collect();
        parts.iter().any(|p| !p.is_empty()).then_some(parts)
    };
    let npu = m.segment("NPU").is_some();
    let pv1 = m.segment("PV1").is_some();
    Ok(Inbound {
        code: get("MSH-9.1"),
        trigger: get("MSH-9.2"),
        control_id: get("MSH-10"),
        sending_application: get("MSH-3"),
        sending_facility: get("MSH-4"),
        version: get("MSH-12.1"),
        npu_bed: if npu { location("NPU-1") } else { None },
        npu_status: npu.then(|| get("NPU-2")),
        pv1_bed: if pv1 { location("PV1-3") } else { None },
        pv1_prior_bed: if pv1 { location("PV1-6") } else { None },
    })
}

/// SHA-256 (hex) of the message's [`hhs_core::hl7::canonical`] text: the content a repeat must match.
pub fn digest(text: &str) -> String {
    hex::encode(Sha256::digest(hhs_core::hl7::canonical(text).as_bytes()))
}

/// Takes one message from `actor` (the integration principal) and answers it: applies what it asks (all of it,
/// or nothing when a bed is unknown) and records it in one transaction, or answers a repeat from the record.
pub async fn ingest(store: &DynStore, cfg: &Hl7Config, text: &str, actor: &Actor) -> Result<String, StoreError> {
    let inbound = match read(text) {
        Ok(m) if !m.control_id.is_empty() => m,
        Ok(m) => return Ok(answer(&m, AckCode::AR, "MSH-10 (message control id) is missing")),
        Err(why) => return Ok(answer(&Inbound::default(), AckCode::AR, &why)),
    };
    let planned = plan(&inbound, &cfg.mapping);
    let Ok(bed_type) = ResourceType::parse(&cfg.mapping.resource_type) else {
        return Ok(answer(&inbound, AckCode::AE, "the bed type HHS is configured with is not a resource type"));
    };
    let message = Hl7Message { inbound, digest: digest(text), plan: planned, bed_type, window: cfg.window };
    let answered = store.hl7_ingest(&message, actor).await?;
    let control_id = &message.inbound.control_id;
    match answered.repeat {
        hhs_core::hl7::Repeat::Same => {
            tracing::debug!(control_id = %control_id, "HL7 message repeated: the stored ACK again")
        }
        _ => {
            tracing::info!(control_id = %control_id, ack = answered.code.as_str(), repeat = ?answered.repeat, "HL7 message answered")
        }
    }
    Ok(answered.ack)
}

/// An `ACK` to `m` not kept anywhere (a message refused before the store), stamped now with a fresh control id.
fn answer(m: &Inbound, code: AckCode, why: &str) -> String {
    let stamp = chrono::Utc::now().format("%Y%m%d%H%M%S").to_string();
    ack(m, code, why, &stamp, &uuid::Uuid::now_v7().simple().to_string())
}

/// The MLLP listener's settings: its transport, and its bounds.
#[derive(Clone)]
pub struct MllpConfig {
    pub transport: MllpTransport,
    /// Connections served at once; one more is closed at once.
    pub max_connections: usize,
    /// A connection that sends nothing for this long (or takes longer for its TLS handshake) is closed.
    pub idle: Duration,
    /// The largest message; a larger one is answered `AR` and its connection closed.
    pub max_message: usize,
}

/// Plain TCP (loopback, one principal) or TLS with client certificates mapped to principals.
#[derive(Clone)]
pub enum MllpTransport {
    Plain(hhs_core::Principal),
    Tls { acceptor: tokio_rustls::TlsAcceptor, clients: Arc<ClientMap> },
}

/// The TLS files and mapping as the flags give them.
#[derive(Clone, Debug, Default)]
pub struct MllpArgs {
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub client_ca: Option<PathBuf>,
    pub clients: Vec<String>,
    pub plain_principal: Option<String>,
    pub max_connections: usize,
    pub idle: Duration,
}

impl MllpConfig {
    /// The listener for `addr` as configured, or why it must not start (`hhs_core::mllp::transport`).
    pub fn new(addr: std::net::SocketAddr, a: &MllpArgs) -> Result<MllpConfig, String> {
        let clients = ClientMap::parse(a.clients.iter().map(String::as_str))?;
        let listen = hhs_core::mllp::Listen {
            loopback: addr.ip().is_loopback(),
            cert: a.cert.is_some(),
            key: a.key.is_some(),
            client_ca: a.client_ca.is_some(),
            mapped: clients.len(),
            plain_principal: a.plain_principal.as_deref(),
        };
        let transport = match hhs_core::mllp::transport(&listen)? {
            Transport::Plain { principal } => MllpTransport::Plain(principal),
            Transport::Tls => {
                let none = std::path::Path::new("");
                let (cert, key, ca) = (a.cert.as_deref(), a.key.as_deref(), a.client_ca.as_deref());
                let acceptor = tls_acceptor(cert.unwrap_or(none), key.unwrap_or(none), ca.unwrap_or(none))?;
                MllpTransport::Tls { acceptor, clients: Arc::new(clients) }
            }
        };
        Ok(MllpConfig { transport, max_connections: a.max_connections.max(1), idle: a.idle, max_message: MAX_MESSAGE })
    }
}

/// A TLS server that requires a client certificate signed by one of `client_ca`'s CAs (rustls, ring).
pub fn tls_acceptor(
    cert: &std::path::Path,
    key: &std::path::Path,
    client_ca: &std::path::Path,
) -> Result<tokio_rustls::TlsAcceptor, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|i| i.collect::<Result<_, _>>())
        .map_err(|e| format!("--mllp-tls-cert {}: {e}", cert.display()))?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| format!("--mllp-tls-key {}: {e}", key.display()))?;
    let mut roots = rustls::RootCertStore::empty();
    let cas: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(client_ca)
        .and_then(|i| i.collect::<Result<_, _>>())
        .map_err(|e| format!("--mllp-client-ca {}: {e}", client_ca.display()))?;
    for ca in cas {
        roots.add(ca).map_err(|e| format!("--mllp-client-ca {}: {e}", client_ca.display()))?;
    }
    if roots.is_empty() {
        return Err(format!("--mllp-client-ca {}: no CA certificate in it", client_ca.display()));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| format!("--mllp-client-ca {}: {e}", client_ca.display()))?;
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .map_err(|e| format!("--mllp-tls-cert/--mllp-tls-key: {e}"))?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// The names a certificate is known by: its DNS and URI subject alternative names and its subject's CNs.
pub fn certificate_names(der: &rustls::pki_types::CertificateDer<'_>) -> Vec<String> {
    let Ok(cert) = webpki::EndEntityCert::try_from(der) else { return vec![] };
    let mut names: Vec<String> = cert.valid_dns_names().chain(cert.valid_uri_names()).map(str::to_owned).collect();
    names.extend(common_names(cert.subject()));
    names
}

/// One DER element of `input`: its tag, its content and what follows it.
fn der(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        (rest[..n].iter().fold(0usize, |a, b| (a << 8) | usize::from(*b)), &rest[n..])
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

/// The common names (OID 2.5.4.3) of a certificate subject's content (a Name's RDNs, as webpki gives it).
pub fn common_names(subject: &[u8]) -> Vec<String> {
    let mut out = vec![];
    let mut rdns = subject;
    while let Some((0x31, mut set, rest)) = der(rdns) {
        rdns = rest;
        while let Some((0x30, atv, next)) = der(set) {
            set = next;
            if let Some((0x06, [0x55, 0x04, 0x03], value)) = der(atv) {
                // UTF8String, PrintableString, IA5String, TeletexString.
                if let Some((0x0c | 0x13 | 0x16 | 0x14, v, _)) = der(value) {
                    if let Ok(s) = std::str::from_utf8(v) {
                        out.push(s.to_owned());
                    }
                }
            }
        }
    }
    out
}

/// The MLLP listener: each connection (at most `max_connections` at once) sends framed messages and gets each
/// `ACK` framed back, attributed to its principal. Bytes outside a frame are skipped; a frame over the limit is
/// answered `AR` and its connection closed; an idle connection is closed.
pub async fn serve_mllp(
    listener: TcpListener,
    store: DynStore,
    hl7: Arc<Hl7Config>,
    mllp: Arc<MllpConfig>,
    shutdown: CancellationToken,
) {
    let slots = Arc::new(tokio::sync::Semaphore::new(mllp.max_connections));
    loop {
        let (socket, peer) = tokio::select! {
            () = shutdown.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "MLLP accept failed");
                    continue;
                }
            },
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::warn!(peer = %peer, max = mllp.max_connections, "MLLP connection refused: at the connection limit");
            drop(socket);
            continue;
        };
        let (store, hl7, mllp, stop) = (store.clone(), hl7.clone(), mllp.clone(), shutdown.clone());
        tokio::spawn(async move {
            let _slot = slot;
            tokio::select! {
                () = stop.cancelled() => {}
                result = accept(socket, &store, &hl7, &mllp) => if let Err(e) = result {
                    tracing::info!(peer = %peer, error = %e, "MLLP connection ended");
                },
            }
        });
    }
}

/// One connection: its TLS handshake and principal (or plain, loopback), then its messages.
async fn accept(
    socket: tokio::net::TcpStream,
    store: &DynStore,
    hl7: &Hl7Config,
    mllp: &MllpConfig,
) -> std::io::Result<()> {
    let refused = |why: String| std::io::Error::new(std::io::ErrorKind::PermissionDenied, why);
    match &mllp.transport {
        MllpTransport::Plain(principal) => {
            let actor = Actor { principal: principal.as_str().to_owned(), ..Actor::default() };
            connection(socket, store, hl7, mllp, &actor).await
        }
        MllpTransport::Tls { acceptor, clients } => {
            let tls = tokio::time::timeout(mllp.idle, acceptor.accept(socket))
                .await
                .map_err(|_| std::io::ErrorKind::TimedOut)??;
            let names =
                tls.get_ref().1.peer_certificates().and_then(|c| c.first()).map(certificate_names).unwrap_or_default();
            let refs: Vec<&str> = names.iter().map(String::as_str).collect();
            match clients.principal(&refs) {
                Ok(principal) => {
                    let actor = Actor { principal: principal.as_str().to_owned(), ..Actor::default() };
                    connection(tls, store, hl7, mllp, &actor).await
                }
                Err(r) => {
                    let reason = match r {
                        Refused::Unmapped => {
                            format!("MLLP client certificate {names:?} is mapped to no principal (--mllp-client)")
                        }
                        Refused::Ambiguous => {
                            format!("MLLP client certificate {names:?} is mapped to more than one principal")
                        }
                    };
                    tracing::warn!(reason = %reason, "MLLP connection refused");
                    let event = EventView {
                        outcome: "denied".into(),
                        ..EventView::new(
                            LogKind::AuthFailed,
                            Millis(0),
                            &Actor { principal: "anonymous".into(), ..Actor::default() },
                            Detail::AuthFailed(AuthFailedDetail { reason: reason.clone(), suppressed_before: 0 }),
                        )
                    };
                    if let Err(e) = store.append_event(event).await {
                        tracing::warn!(error = %e, "could not record a refused MLLP client");
                    }
                    Err(refused(reason))
                }
            }
        }
    }
}

async fn connection<S: AsyncRead + AsyncWrite + Unpin>(
    mut socket: S,
    store: &DynStore,
    hl7: &Hl7Config,
    mllp: &MllpConfig,
    actor: &Actor,
) -> std::io::Result<()> {
    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        // Every complete frame in the buffer, in order.
        while let Some((start, end)) = frame(&buf) {
            if end - start - 1 > mllp.max_message {
                return oversize(&mut socket, &buf[start + 1..end], mllp.max_message).await;
            }
            let text = String::from_utf8_lossy(&buf[start + 1..end]).into_owned();
            buf.drain(..end + END.len());
            let answer = match ingest(store, hl7, &text, actor).await {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "HL7 message not taken: the database is unavailable");
                    answer(
                        &read(&text).unwrap_or_default(),
                        AckCode::AE,
                        "HHS cannot reach its database; send it again",
                    )
                }
            };
            // A peer that stops reading keeps its slot no longer than one that stops sending.
            tokio::time::timeout(mllp.idle, socket.write_all(&framed(&answer)))
                .await
                .map_err(|_| std::io::ErrorKind::TimedOut)??;
        }
        // A frame begun and not ended within the limit: never buffered further.
        if buf.len() > mllp.max_message + 1 {
            return tokio::time::timeout(mllp.idle, oversize(&mut socket, &buf[1..], mllp.max_message))
                .await
                .map_err(|_| std::io::ErrorKind::TimedOut)?;
        }
        let n = tokio::time::timeout(mllp.idle, socket.read(&mut chunk))
            .await
            .map_err(|_| std::io::ErrorKind::TimedOut)??;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        // Anything before a frame's start is noise.
        if let Some(s) = buf.iter().position(|b| *b == START) {
            buf.drain(..s);
        } else {
            buf.clear();
        }
    }
}

/// Answers a message over the limit `AR` (addressed by its `MSH`, if that much arrived), then closes.
async fn oversize<S: AsyncWrite + Unpin>(socket: &mut S, partial: &[u8], limit: usize) -> std::io::Result<()> {
    let head = partial.split(|b| *b == b'\r' || *b == b'\n').next().unwrap_or_default();
    let m = read(&String::from_utf8_lossy(head)).unwrap_or_default();
    let text = answer(&m, AckCode::AR, &format!("message larger than {limit} bytes: not taken"));
    socket.write_all(&framed(&text)).await?;
    socket.shutdown().await?;
    Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "frame too large"))
}

fn framed(text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() + 3);
    out.push(START);
    out.extend_from_slice(text.as_bytes());
    out.extend_from_slice(&END);
    out
}

/// The first complete frame in `buf`: the index of its start byte and of its end (the `0x1C`).
pub fn frame(buf: &[u8]) -> Option<(usize, usize)> {
    let start = buf.iter().position(|b| *b == START)?;
    let end = buf[start..].windows(2).position(|w| w == END)? + start;
    Some((start, end))
}
