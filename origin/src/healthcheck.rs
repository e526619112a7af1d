//! `hhs-origin healthcheck`: one `GET /healthz` over plain HTTP/1.1, exit 0 on a 200 and 1 otherwise. The image
//! (deploy/Containerfile) has no shell and no curl; its HEALTHCHECK runs this.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

/// Where a health check asks when given no URL: `/healthz` on the address `serve` binds, a wildcard address
/// (`0.0.0.0`, `::`, as in the image) asked on the loopback address of its family.
pub fn url_for_bind(bind: SocketAddr) -> String {
    let ip = match bind.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    format!("http://{}/healthz", SocketAddr::new(ip, bind.port()))
}

/// GETs `url` and returns its status code if it is 200; any other answer, or none within `timeout`, is an error
/// that says what happened.
pub fn check(url: &str, timeout: Duration) -> Result<u16, String> {
    let (authority, path) = split_url(url)?;
    let addrs: Vec<SocketAddr> =
        authority.to_socket_addrs().map_err(|e| format!("cannot resolve {authority}: {e}"))?.collect();
    let mut last = format!("{authority} resolves to no address");
    for addr in addrs {
        match ask(addr, authority, path, timeout) {
            Ok(200) => return Ok(200),
            Ok(status) => return Err(format!("{url} answered {status}")),
            Err(e) => last = format!("{url}: {e}"),
        }
    }
    Err(last)
}

/// `http://host[:port][/path]` as (`host:port`, `/path`).
fn split_url(url: &str) -> Result<(&str, &str), String> {
    let rest = url.strip_prefix("http://").ok_or_else(|| format!("{url:?}: the health check speaks plain http://"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, "/"),
    };
    if authority.is_empty() {
        return Err(format!("{url:?} names no host"));
    }
    // A port is required (ToSocketAddrs needs one); the origin has no conventional port 80.
    let has_port = authority.rsplit_once(':').is_some_and(|(h, p)| !h.ends_with(':') && p.parse::<u16>().is_ok());
    if !has_port {
        return Err(format!("{url:?} names no port"));
    }
    Ok((authority, path))
}

fn ask(addr: SocketAddr, authority: &str, path: &str, timeout: Duration) -> Result<u16, String> {
    let mut s = TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("cannot connect to {addr}: {e}"))?;
    s.set_read_timeout(Some(timeout)).and_then(|()| s.set_write_timeout(Some(timeout))).map_err(|e| e.to_string())?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: hhs-origin-healthcheck\r\nConnection: close\r\n\r\n"
    );
    s.write_all(request.as_bytes()).map_err(|e| format!("cannot send to {addr}: {e}"))?;
    // The status line is all that matters; read until it is complete.
    let mut head = Vec::with_capacity(64);
    let mut buf = [0u8; 256];
    while !head.contains(&b'\n') && head.len() < 4096 {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => head.extend_from_slice(&buf[..n]),
            Err(e) => return Err(format!("no answer from {addr}: {e}")),
        }
    }
    let line = String::from_utf8_lossy(&head);
    let line = line.lines().next().unwrap_or_default();
    let mut parts = line.split(' ');
    match (parts.next(), parts.next().and_then(|c| c.parse::<u16>().ok())) {
        (Some(v), Some(status)) if v.starts_with("HTTP/1.") => Ok(status),
        _ => Err(format!("{addr} did not answer HTTP: {line:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wildcard_bind_is_asked_on_loopback() {
        assert_eq!(url_for_bind("0.0.0.0:8000".parse().unwrap()), "http://127.0.0.1:8000/healthz");
        assert_eq!(url_for_bind("[::]:9000".parse().unwrap()), "http://[::1]:9000/healthz");
        assert_eq!(url_for_bind("10.0.0.5:8000".parse().unwrap()), "http://10.0.0.5:8000/healthz");
    }

    #[test]
    fn urls_split_into_authority_and_path() {
        assert_eq!(split_url("http://127.0.0.1:8000/healthz"), Ok(("127.0.0.1:8000", "/healthz")));
        assert_eq!(split_url("http://[::1]:8000"), Ok(("[::1]:8000", "/")));
        assert!(split_url("https://127.0.0.1:8000/healthz").is_err());
        assert!(split_url("http://127.0.0.1/healthz").is_err());
        assert!(split_url("http://[::1]/healthz").is_err());
    }
}
