//! Request ids: every request gets one, returned in the `X-Request-Id`
//! response header and carried as the `request_id` field of the `request`
//! tracing span, so every log line of that request (the access line, the
//! query service's line, a server fault) can be found by it.
//!
//! A client's (or reverse proxy's) `X-Request-Id` is kept only when it is
//! 1 to [`MAX_LEN`] characters of `A-Z a-z 0-9 . _ -`: anything else could
//! forge log lines or carry data, so it is replaced by a fresh id.

/// The header name.
pub const HEADER: &str = "x-request-id";

/// Longest client-supplied id accepted.
pub const MAX_LEN: usize = 64;

/// Whether a client-supplied id may be used as is.
pub fn is_valid(id: &[u8]) -> bool {
    !id.is_empty()
        && id.len() <= MAX_LEN
        && id
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// A fresh id: 128 random bits in hex (OS randomness), or, if the OS has
/// none to give, a process-wide counter (ids need to be unique, not secret).
pub fn generate() -> String {
    let mut bytes = [0u8; 16];
    match getrandom::fill(&mut bytes) {
        Ok(()) => hex::encode(bytes),
        Err(_) => {
            use std::sync::atomic::{AtomicU64, Ordering};
            static NEXT: AtomicU64 = AtomicU64::new(0);
            format!("seq-{}", NEXT.fetch_add(1, Ordering::Relaxed))
        }
    }
}

/// The id of a request: the client's when valid, else a fresh one.
pub fn from_header(value: Option<&[u8]>) -> String {
    match value {
        // Valid ids are ASCII, so this is lossless.
        Some(v) if is_valid(v) => String::from_utf8_lossy(v).into_owned(),
        _ => generate(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_ids_are_kept_only_when_short_and_plain() {
        for ok in ["a", "req-1.2_3", "ABCdef0123456789", &"x".repeat(MAX_LEN)] {
            assert!(is_valid(ok.as_bytes()), "{ok:?} should be accepted");
            assert_eq!(from_header(Some(ok.as_bytes())), ok);
        }
        for bad in [
            "",
            &"x".repeat(MAX_LEN + 1),
            "a b",
            "a\nb",
            "a\"b",
            "a/b",
            "{\"json\":1}",
            "é",
            "id\r\nX-Injected: 1",
        ] {
            assert!(!is_valid(bad.as_bytes()), "{bad:?} should be refused");
            let replaced = from_header(Some(bad.as_bytes()));
            assert_ne!(replaced, bad);
            assert!(is_valid(replaced.as_bytes()), "{replaced}");
        }
    }

    #[test]
    fn generated_ids_are_valid_and_distinct() {
        let a = generate();
        let b = from_header(None);
        assert_eq!(a.len(), 32);
        assert!(is_valid(a.as_bytes()) && is_valid(b.as_bytes()));
        assert_ne!(a, b);
    }
}
