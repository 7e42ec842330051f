//! HTTP: reads one request head from a new connection, and writes plain HTTP responses.
//!
//! Owns nothing between calls. Used by the client reader before a WebSocket exists (the page,
//! error statuses) and by the listener for its 503; never after a handshake.

use std::io::{self, ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::Instant;

/// Headers parsed from a request head; a browser sends about 15.
const MAX_HEADERS: usize = 64;

/// One parsed request head.
#[derive(Debug)]
pub struct RequestHead {
    /// Every byte read so far: the head, and anything the client sent after it.
    pub bytes: Vec<u8>,
    /// `GET`, `HEAD`, …
    pub method: String,
    /// The request-target as sent: path and query.
    pub target: String,
    /// True when the client asks for a WebSocket (`Upgrade: websocket`).
    pub wants_websocket: bool,
    /// Where the head ends in `bytes` (a body, or the next request, follows).
    pub head_len: usize,
    /// HTTP/1.1 (rather than 1.0): the connection stays open unless it says otherwise.
    pub http11: bool,
}

impl RequestHead {
    /// The path part of the target (before `?`).
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }

    /// The value of header `name` (the first one), trimmed.
    pub fn header(&self, name: &str) -> Option<&str> {
        let head = std::str::from_utf8(&self.bytes[..self.head_len]).ok()?;
        head.split("\r\n").skip(1).find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.trim().eq_ignore_ascii_case(name).then(|| value.trim())
        })
    }

    /// True when the client keeps the connection for more requests (HTTP/1.1 without
    /// `Connection: close`).
    pub fn keep_alive(&self) -> bool {
        let close = self
            .header("connection")
            .is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case("close")));
        self.http11 && !close
    }
}

/// Why no request head could be read.
#[derive(Debug)]
pub enum HeadError {
    /// The client sent nothing, or too little, before the deadline.
    Timeout,
    /// The head is larger than the limit.
    TooLarge,
    /// Not an HTTP/1.x request.
    Malformed(String),
    /// The client closed the connection (or it failed) before a whole head arrived.
    Closed,
}

/// Reads until a complete request head has arrived, at most `max_bytes`, giving up at
/// `deadline` (a client dribbling one byte at a time cannot hold the thread past it).
pub fn read_head(
    stream: &TcpStream,
    deadline: Instant,
    max_bytes: usize,
) -> Result<RequestHead, HeadError> {
    read_head_after(stream, deadline, max_bytes, Vec::with_capacity(1024))
}

/// Like [`read_head`], when `buf` already holds the start of the request (bytes a
/// kept-alive connection sent after the previous one).
pub fn read_head_after(
    mut stream: &TcpStream,
    deadline: Instant,
    max_bytes: usize,
    mut buf: Vec<u8>,
) -> Result<RequestHead, HeadError> {
    if let Some(head) = parse_head(&buf)? {
        return Ok(head);
    }
    loop {
        let now = Instant::now();
        if now >= deadline {
            return Err(HeadError::Timeout);
        }
        if stream.set_read_timeout(Some(deadline - now)).is_err() {
            return Err(HeadError::Closed);
        }
        let len = buf.len();
        buf.resize((len + 2048).min(max_bytes + 1), 0);
        let n = match stream.read(&mut buf[len..]) {
            Ok(0) => return Err(HeadError::Closed),
            Ok(n) => n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return Err(HeadError::Timeout)
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => 0,
            Err(_) => return Err(HeadError::Closed),
        };
        buf.truncate(len + n);
        if let Some(head) = parse_head(&buf)? {
            return Ok(head);
        }
        if buf.len() > max_bytes {
            return Err(HeadError::TooLarge);
        }
    }
}

/// Parses `buf` as a request head; `Ok(None)` when more bytes are needed.
pub fn parse_head(buf: &[u8]) -> Result<Option<RequestHead>, HeadError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let head_len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooLarge),
        Err(e) => return Err(HeadError::Malformed(e.to_string())),
    };
    let wants_websocket = req.headers.iter().any(|h| {
        h.name.eq_ignore_ascii_case("upgrade")
            && std::str::from_utf8(h.value)
                .is_ok_and(|v| v.trim().eq_ignore_ascii_case("websocket"))
    });
    Ok(Some(RequestHead {
        bytes: buf.to_vec(),
        method: req.method.unwrap_or_default().to_string(),
        target: req.path.unwrap_or_default().to_string(),
        wants_websocket,
        head_len,
        http11: req.version == Some(1),
    }))
}

/// The head of a response that keeps the connection open when `keep_alive` (long-polling:
/// one connection carries many polls). `extra_headers` are complete lines.
pub fn response_head(
    status: u16,
    content_type: &str,
    content_length: usize,
    extra_headers: &str,
    keep_alive: bool,
) -> String {
    let connection = if keep_alive { "keep-alive" } else { "close" };
    format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\n\
         Content-Length: {content_length}\r\nX-Content-Type-Options: nosniff\r\n\
         Cache-Control: no-store\r\nServer: wschat\r\nConnection: {connection}\r\n\
         {extra_headers}\r\n",
        reason = reason_phrase(status),
    )
}

/// A response with a body and `Connection: close` (one request per connection keeps the
/// thread count honest). `extra_headers` are complete lines, each ending in `\r\n`.
pub fn write_response(
    mut stream: &TcpStream,
    status: u16,
    content_type: &str,
    extra_headers: &str,
    body: &[u8],
    send_body: bool,
) -> io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {len}\r\n\
         X-Content-Type-Options: nosniff\r\nServer: wschat\r\nConnection: close\r\n{extra_headers}\r\n",
        reason = reason_phrase(status),
        len = body.len(),
    );
    let mut out = Vec::with_capacity(head.len() + if send_body { body.len() } else { 0 });
    out.extend_from_slice(head.as_bytes());
    if send_body {
        out.extend_from_slice(body);
    }
    stream.write_all(&out)?;
    stream.flush()
}

/// A plain-text error response saying what went wrong, then the write side is closed.
pub fn write_error(stream: &TcpStream, status: u16, message: &str) -> io::Result<()> {
    let body = format!("{status} {}: {message}\n", reason_phrase(status));
    let extra = if status == 405 {
        "Allow: GET, HEAD\r\n"
    } else {
        ""
    };
    write_response(
        stream,
        status,
        "text/plain; charset=utf-8",
        extra,
        body.as_bytes(),
        true,
    )
}

/// The standard reason phrase of the statuses wschat sends.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        204 => "No Content",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        411 => "Length Required",
        413 => "Content Too Large",
        426 => "Upgrade Required",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

/// Decodes `%XX` escapes (and `+` as space when `plus_is_space`, as in query strings).
/// Returns `None` for a bad escape or bytes that are not UTF-8.
pub fn percent_decode(s: &str, plus_is_space: bool) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes.get(i + 1..i + 3)?;
                let hex = std::str::from_utf8(hex).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// The first value of `key` in a query string (`a=1&b=2`), percent-decoded.
pub fn query_param(query: &str, key: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (percent_decode(k, true).as_deref() == Some(key)).then(|| percent_decode(v, true))?
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_websocket_request() {
        let raw = b"GET /echo?x=1 HTTP/1.1\r\nHost: a\r\nUpgrade: WebSocket\r\nConnection: Upgrade\r\n\r\n";
        let head = parse_head(raw).unwrap().unwrap();
        assert_eq!(head.method, "GET");
        assert_eq!(head.target, "/echo?x=1");
        assert_eq!(head.path(), "/echo");
        assert!(head.wants_websocket);
        assert_eq!(head.bytes, raw);
    }

    #[test]
    fn partial_and_bad_heads() {
        assert!(parse_head(b"GET / HTTP/1.1\r\nHost: a\r\n")
            .unwrap()
            .is_none());
        assert!(matches!(
            parse_head(b"\x16\x03\x01garbage\r\n\r\n"),
            Err(HeadError::Malformed(_))
        ));
        let head = parse_head(b"GET /a.css HTTP/1.1\r\n\r\n").unwrap().unwrap();
        assert!(!head.wants_websocket);
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%20b+c", true).as_deref(), Some("a b c"));
        assert_eq!(percent_decode("a+b", false).as_deref(), Some("a+b"));
        assert_eq!(percent_decode("%2e%2E", false).as_deref(), Some(".."));
        assert_eq!(percent_decode("%zz", false), None);
        assert_eq!(percent_decode("%e9", false), None); // not UTF-8 on its own
        assert_eq!(percent_decode("%C3%A9", false).as_deref(), Some("é"));
    }

    #[test]
    fn query_params() {
        assert_eq!(
            query_param("name=alice&x=1", "name").as_deref(),
            Some("alice")
        );
        assert_eq!(
            query_param("x=1&username=bob%20b", "username").as_deref(),
            Some("bob b")
        );
        assert_eq!(query_param("name", "name").as_deref(), Some(""));
        assert_eq!(query_param("x=1", "name"), None);
    }
}
