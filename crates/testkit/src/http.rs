//! A small HTTP/1.1 client: one request per connection (`Connection:
//! close`), any method, raw header values, a plain or chunked body, a
//! timeout. Enough for every test, without a client crate's build.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// A request's body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// No body.
    None,
    /// A body sent with `Content-Length`.
    Bytes(Vec<u8>),
    /// A body sent with `Transfer-Encoding: chunked`, in one chunk.
    Chunked(Vec<u8>),
}

/// A request to send.
#[derive(Debug, Clone)]
pub struct Request {
    /// Method (any token, `GET`, `POST`, `PATCH`…).
    pub method: String,
    /// Path and query (`/v1/query`).
    pub path: String,
    /// Headers as sent; a value that could not be sent in a header (a
    /// control byte) is left out, as a client library would refuse it.
    pub headers: Vec<(String, Vec<u8>)>,
    /// The body.
    pub body: Body,
}

impl Request {
    /// `METHOD path`, no headers, no body.
    pub fn new(method: &str, path: &str) -> Request {
        Request {
            method: method.to_owned(),
            path: path.to_owned(),
            headers: Vec::new(),
            body: Body::None,
        }
    }

    /// With a header.
    pub fn header(mut self, name: &str, value: impl AsRef<[u8]>) -> Request {
        self.headers
            .push((name.to_owned(), value.as_ref().to_vec()));
        self
    }

    /// With `Authorization: Bearer TOKEN`.
    pub fn bearer(self, token: &str) -> Request {
        self.header("Authorization", format!("Bearer {token}"))
    }

    /// With a JSON body.
    pub fn json(self, body: &str) -> Request {
        let mut r = self.header("Content-Type", "application/json");
        r.body = Body::Bytes(body.as_bytes().to_vec());
        r
    }

    /// With a body.
    pub fn body(mut self, body: Body) -> Request {
        self.body = body;
        self
    }
}

/// An answer.
#[derive(Debug, Clone)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Headers, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// The body (chunked bodies decoded).
    pub body: Vec<u8>,
}

impl Response {
    /// The first header `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

fn sendable_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn sendable_value(value: &[u8]) -> bool {
    value
        .iter()
        .all(|&b| b == b'\t' || (b >= 0x20 && b != 0x7f))
}

/// Sends `req` to `base` (`http://HOST:PORT`) and reads the whole answer.
pub fn send(base: &str, req: &Request, timeout: Duration) -> std::io::Result<Response> {
    let host = base.strip_prefix("http://").unwrap_or(base);
    let mut stream = TcpStream::connect(host)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    let mut head = format!(
        "{} {} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n",
        req.method, req.path
    )
    .into_bytes();
    for (name, value) in &req.headers {
        if sendable_name(name) && sendable_value(value) {
            head.extend_from_slice(name.as_bytes());
            head.extend_from_slice(b": ");
            head.extend_from_slice(value);
            head.extend_from_slice(b"\r\n");
        }
    }
    match &req.body {
        Body::None => head.extend_from_slice(b"\r\n"),
        Body::Bytes(b) => {
            head.extend_from_slice(format!("Content-Length: {}\r\n\r\n", b.len()).as_bytes());
            head.extend_from_slice(b);
        }
        Body::Chunked(b) => {
            head.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n");
            if !b.is_empty() {
                head.extend_from_slice(format!("{:x}\r\n", b.len()).as_bytes());
                head.extend_from_slice(b);
                head.extend_from_slice(b"\r\n");
            }
            head.extend_from_slice(b"0\r\n\r\n");
        }
    }
    // The server may answer (413, 408) and close before reading all of a
    // large body; the answer is still there to read.
    let _ = stream.write_all(&head);
    parse(&read_answer(&mut stream)?)
}

/// Reads until the answer is complete (its `Content-Length`, or the last
/// chunk), or the server closes. Not to the close alone: after an error
/// answer to a request whose body it did not read, the server keeps the
/// connection a while (400 ms to 1.5 s here) before it closes, and the
/// fuzz test would spend most of its time waiting for that.
fn read_answer(stream: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut raw = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return Ok(raw),
            Ok(n) => {
                raw.extend_from_slice(&buf[..n]);
                if complete(&raw) {
                    return Ok(raw);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) if !raw.is_empty() && e.kind() == std::io::ErrorKind::ConnectionReset => {
                return Ok(raw);
            }
            Err(e) => return Err(e),
        }
    }
}

/// Whether `raw` holds a whole answer, by its own framing.
fn complete(raw: &[u8]) -> bool {
    let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
    let rest = &raw[end + 4..];
    let header = |name: &str| {
        head.split("\r\n")
            .filter_map(|l| l.split_once(':'))
            .find(|(k, _)| k.trim() == name)
            .map(|(_, v)| v.trim().to_owned())
    };
    if header("transfer-encoding").is_some_and(|v| v == "chunked") {
        return dechunk(rest).is_ok();
    }
    match header("content-length").and_then(|v| v.parse::<usize>().ok()) {
        Some(len) => rest.len() >= len,
        None => false,
    }
}

fn bad(what: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned())
}

fn parse(raw: &[u8]) -> std::io::Result<Response> {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| bad("no end of headers in the answer"))?;
    let head = std::str::from_utf8(&raw[..end]).map_err(|_| bad("headers are not UTF-8"))?;
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("no status line"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let rest = &raw[end + 4..];
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    let body = if chunked {
        dechunk(rest)?
    } else {
        let len = headers
            .iter()
            .find(|(k, _)| k == "content-length")
            .and_then(|(_, v)| v.parse::<usize>().ok())
            .unwrap_or(rest.len());
        rest[..len.min(rest.len())].to_vec()
    };
    Ok(Response {
        status,
        headers,
        body,
    })
}

fn dechunk(mut rest: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or_else(|| bad("a chunk without its size line"))?;
        let size_text = std::str::from_utf8(&rest[..line_end]).map_err(|_| bad("chunk size"))?;
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| bad("chunk size"))?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        if rest.len() < size {
            return Err(bad("a chunk cut short"));
        }
        out.extend_from_slice(&rest[..size]);
        rest = rest.get(size + 2..).unwrap_or(&[]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_is_complete_by_its_framing() {
        assert!(!complete(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"));
        assert!(!complete(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nh"));
        assert!(complete(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nhi"));
        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n";
        assert!(!complete(chunked));
        assert!(complete(&[&chunked[..], b"0\r\n\r\n"].concat()));
        // Without framing, only the close ends it.
        assert!(!complete(b"HTTP/1.1 200 OK\r\n\r\nhi"));
    }

    #[test]
    fn answers_parse_plain_and_chunked() {
        let plain =
            parse(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Request-Id: a\r\n\r\nhi").unwrap();
        assert_eq!((plain.status, plain.text().as_str()), (200, "hi"));
        assert_eq!(plain.header("x-request-id"), Some("a"));
        let chunked = parse(
            b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
        )
        .unwrap();
        assert_eq!((chunked.status, chunked.text().as_str()), (404, "abcde"));
        assert!(parse(b"garbage").is_err());
    }

    #[test]
    fn unsendable_headers_are_left_out() {
        assert!(sendable_name("X-Ok") && !sendable_name("bad name") && !sendable_name(""));
        assert!(
            sendable_value(b"a b\tc") && !sendable_value(b"a\r\nb") && !sendable_value(b"\x7f")
        );
    }
}
