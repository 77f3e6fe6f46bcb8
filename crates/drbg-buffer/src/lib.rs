//! OpenSSL's private DRBG, served to opendp's samplers from a per-thread
//! buffer.
//!
//! opendp (feature `use-openssl`) draws every random bit of its exact
//! samplers through `RAND_priv_bytes`, a few bytes at a time: one discrete
//! Laplace draw makes a dozen or so calls. Each call pays a fixed cost inside
//! OpenSSL 3 that does not depend on its length: a `getpid` system call (the
//! fork check), a lock on the shared primary DRBG and a parameter lookup to
//! read its reseed counter, and the CTR-DRBG update that re-keys AES. On a 2-core
//! VM that fixed cost was 69% of a 900-cell release.
//!
//! [`install`] puts a `RAND_METHOD` in front of OpenSSL's: its `bytes` copies
//! from a [`BUFFER`]-byte buffer per thread, refilled by one
//! `EVP_RAND_generate` call on the calling thread's private DRBG (the very
//! generator `RAND_priv_bytes` uses). Google's differential privacy library
//! does the same (`SecureURBG` keeps a 64 KiB buffer of `RAND_bytes`
//! output). What it keeps:
//! - **The generator.** Every byte still comes from OpenSSL's CTR-DRBG
//!   (AES-256), seeded and reseeded by OpenSSL as before; nothing here
//!   generates or transforms randomness, it only moves bytes.
//! - **Each byte is used once.** A byte is copied out, then overwritten with
//!   zero in the buffer, so no output is served twice and past outputs do not
//!   stay in memory (the DRBG's backtracking resistance).
//! - **Fork safety.** A `pthread_atfork` child handler bumps a generation
//!   counter; a buffer filled before a fork is thrown away unread, and the
//!   child's DRBG reseeds (OpenSSL's own fork check) before refilling
//!   (`tests/fork.rs` forks for real).
//! - **Anything unusual goes straight to OpenSSL**: requests larger than a
//!   quarter of the buffer, a re-entrant call, a thread being torn down.
//!
//! `RAND_METHOD` is process-wide, so after [`install`] `RAND_bytes` (the
//! public DRBG's entry point) is also served from the private DRBG through
//! the buffer. `seed`, `add` and `status` are forwarded to OpenSSL's own
//! method unchanged.
//!
//! This is the only crate in the workspace that allows `unsafe`: the FFI to
//! OpenSSL lives here, each block with its reason.

use std::cell::{Cell, RefCell};
use std::ffi::{c_double, c_int, c_uint, c_void};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// Bytes of DRBG output each thread holds. A discrete Laplace draw uses about
/// 20 bytes, so a refill serves a few hundred draws; 4 KiB is one AES-CTR
/// call of a few microseconds, far below OpenSSL's 64 KiB request limit.
pub const BUFFER: usize = 4096;

/// Requests longer than this skip the buffer: they amortise OpenSSL's
/// per-call cost by themselves, and would drain the buffer for one caller.
const DIRECT_ABOVE: usize = BUFFER / 4;

/// Why [`install`] left OpenSSL's own method in place.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum InstallError {
    /// Another `RAND_METHOD` (an engine, another library) was already set;
    /// replacing it would change where its users' randomness comes from.
    #[error("another RAND_METHOD is already installed; leaving it in place")]
    ForeignMethod,
    /// OpenSSL refused the method or the fork handler could not be set.
    #[error("OpenSSL call failed: {0}")]
    OpenSsl(&'static str),
}

/// OpenSSL's `RAND_METHOD` (`include/openssl/rand.h`), field for field.
#[repr(C)]
struct RandMethod {
    seed: Option<unsafe extern "C" fn(*const c_void, c_int) -> c_int>,
    bytes: Option<unsafe extern "C" fn(*mut u8, c_int) -> c_int>,
    cleanup: Option<unsafe extern "C" fn()>,
    add: Option<unsafe extern "C" fn(*const c_void, c_int, c_double) -> c_int>,
    pseudorand: Option<unsafe extern "C" fn(*mut u8, c_int) -> c_int>,
    status: Option<unsafe extern "C" fn() -> c_int>,
}

// Declared here because openssl-sys does not bind them; the symbols are in
// the libcrypto that openssl-sys links (OpenSSL 3, deprecated API enabled).
unsafe extern "C" {
    fn RAND_set_rand_method(meth: *const RandMethod) -> c_int;
    fn RAND_get_rand_method() -> *const RandMethod;
    fn RAND_OpenSSL() -> *const RandMethod;
    fn RAND_get0_private(ctx: *mut c_void) -> *mut c_void;
    fn EVP_RAND_generate(
        ctx: *mut c_void,
        out: *mut u8,
        outlen: usize,
        strength: c_uint,
        prediction_resistance: c_int,
        addin: *const u8,
        addin_len: usize,
    ) -> c_int;
}

/// The method OpenSSL calls once installed. It lives for the whole process,
/// as OpenSSL keeps the pointer.
static METHOD: RandMethod = RandMethod {
    seed: Some(forward_seed),
    bytes: Some(buffered_bytes),
    cleanup: None,
    add: Some(forward_add),
    pseudorand: Some(buffered_bytes),
    status: Some(forward_status),
};

/// OpenSSL's own method (a static inside libcrypto), whose `seed`, `add` and
/// `status` ours forwards to.
static OPENSSL_METHOD: OnceLock<&'static RandMethod> = OnceLock::new();
static INSTALLED: OnceLock<Result<(), InstallError>> = OnceLock::new();

/// Bumped in every child after `fork`; a buffer filled under another value
/// is discarded unread.
static FORK_GENERATION: AtomicU64 = AtomicU64::new(0);

/// Puts the buffered method in front of OpenSSL's, once per process. Later
/// calls return the first call's outcome. On error OpenSSL's own method stays
/// in place, which is equally secure, only slower.
pub fn install() -> Result<(), InstallError> {
    INSTALLED.get_or_init(install_once).clone()
}

/// Whether OpenSSL is currently calling this crate's method.
pub fn is_installed() -> bool {
    // SAFETY: RAND_get_rand_method takes no arguments and returns a pointer
    // we only compare, never dereference.
    let current = unsafe { RAND_get_rand_method() };
    std::ptr::eq(current, &METHOD)
}

/// How many times this crate has asked OpenSSL's DRBG for bytes on the
/// calling thread (refills and direct requests).
pub fn generate_calls() -> u64 {
    GENERATE_CALLS.try_with(Cell::get).unwrap_or(0)
}

fn install_once() -> Result<(), InstallError> {
    openssl_sys::init();
    // SAFETY: both functions take no arguments; RAND_OpenSSL returns the
    // address of OpenSSL's static default method, valid for the process.
    let (current, default) = unsafe { (RAND_get_rand_method(), RAND_OpenSSL()) };
    if default.is_null() {
        return Err(InstallError::OpenSsl("RAND_OpenSSL returned null"));
    }
    if !std::ptr::eq(current, default) {
        return Err(InstallError::ForeignMethod);
    }
    // SAFETY: `default` is non-null and points to OpenSSL's static
    // RAND_METHOD (never freed or written), whose layout RandMethod mirrors.
    let _ = OPENSSL_METHOD.set(unsafe { &*default });
    // SAFETY: registers a child handler that only touches an atomic, which
    // is async-signal-safe as the post-fork child requires.
    if unsafe { libc::pthread_atfork(None, None, Some(after_fork_in_child)) } != 0 {
        return Err(InstallError::OpenSsl("pthread_atfork failed"));
    }
    // SAFETY: METHOD is a 'static RAND_METHOD whose functions uphold
    // OpenSSL's contracts (see each function).
    if unsafe { RAND_set_rand_method(&METHOD) } != 1 {
        return Err(InstallError::OpenSsl("RAND_set_rand_method failed"));
    }
    Ok(())
}

extern "C" fn after_fork_in_child() {
    FORK_GENERATION.fetch_add(1, Ordering::SeqCst);
}

/// Fills `out` straight from the calling thread's private DRBG.
fn generate(out: &mut [u8]) -> bool {
    let _ = GENERATE_CALLS.try_with(|c| c.set(c.get() + 1));
    // SAFETY: RAND_get0_private(NULL) returns this thread's private DRBG of
    // the default library context (created on first use), or null.
    let drbg = unsafe { RAND_get0_private(std::ptr::null_mut()) };
    if drbg.is_null() {
        return false;
    }
    // SAFETY: `drbg` is a live EVP_RAND_CTX owned by OpenSSL for this
    // thread; `out` is a writable slice of exactly `out.len()` bytes;
    // no additional input is passed. EVP_RAND_generate splits requests
    // above the DRBG's maximum itself.
    let ok =
        unsafe { EVP_RAND_generate(drbg, out.as_mut_ptr(), out.len(), 0, 0, std::ptr::null(), 0) };
    ok == 1
}

/// One thread's unread DRBG output: `bytes[next..]` is unread, everything
/// before `next` has been served and zeroed.
struct Pool {
    bytes: [u8; BUFFER],
    next: usize,
    generation: u64,
}

impl Pool {
    /// A pool with nothing unread: the first take fills it.
    const fn empty() -> Self {
        Pool {
            bytes: [0; BUFFER],
            next: BUFFER,
            generation: 0,
        }
    }

    /// Copies `out.len()` unread bytes out (refilling first if too few are
    /// left or a fork happened since the fill) and zeroes them behind.
    fn take(&mut self, out: &mut [u8]) -> bool {
        let generation = FORK_GENERATION.load(Ordering::SeqCst);
        if self.generation != generation || BUFFER - self.next < out.len() {
            // Unread bytes are discarded, never served after a refill.
            self.next = BUFFER;
            if !generate(&mut self.bytes) {
                self.bytes.fill(0);
                return false;
            }
            self.next = 0;
            self.generation = generation;
        }
        let served = &mut self.bytes[self.next..self.next + out.len()];
        out.copy_from_slice(served);
        served.fill(0);
        self.next += out.len();
        true
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.bytes.fill(0);
    }
}

thread_local! {
    /// Per thread, so that tests running side by side do not count each
    /// other's calls.
    static GENERATE_CALLS: Cell<u64> = const { Cell::new(0) };
    static POOL: RefCell<Pool> = const { RefCell::new(Pool::empty()) };
}

/// Fills `out` with DRBG output: from this thread's buffer for short
/// requests, straight from OpenSSL otherwise.
pub fn fill(out: &mut [u8]) -> bool {
    if out.is_empty() {
        return true;
    }
    if out.len() > DIRECT_ABOVE {
        return generate(out);
    }
    POOL.try_with(|pool| match pool.try_borrow_mut() {
        Ok(mut pool) => pool.take(out),
        // Re-entered from inside a refill: never share a half-used buffer.
        Err(_) => generate(out),
    })
    // The thread is being torn down and its buffer is gone.
    .unwrap_or_else(|_| generate(out))
}

/// `RAND_METHOD.bytes` and `.pseudorand`: OpenSSL's contract is 1 on
/// success, 0 on failure.
unsafe extern "C" fn buffered_bytes(buf: *mut u8, num: c_int) -> c_int {
    let Ok(len) = usize::try_from(num) else {
        return 0;
    };
    if len == 0 {
        return 1;
    }
    if buf.is_null() {
        return 0;
    }
    // SAFETY: OpenSSL's contract for RAND_bytes/RAND_priv_bytes: `buf` points
    // to `num` writable bytes, not aliased during the call.
    let out = unsafe { std::slice::from_raw_parts_mut(buf, len) };
    c_int::from(fill(out))
}

unsafe extern "C" fn forward_seed(buf: *const c_void, num: c_int) -> c_int {
    match OPENSSL_METHOD.get().and_then(|f| f.seed) {
        // SAFETY: OpenSSL's own seed function, called with the arguments
        // OpenSSL gave us.
        Some(seed) => unsafe { seed(buf, num) },
        None => 0,
    }
}

unsafe extern "C" fn forward_add(buf: *const c_void, num: c_int, randomness: c_double) -> c_int {
    match OPENSSL_METHOD.get().and_then(|f| f.add) {
        // SAFETY: OpenSSL's own add function, called with the arguments
        // OpenSSL gave us.
        Some(add) => unsafe { add(buf, num, randomness) },
        None => 0,
    }
}

unsafe extern "C" fn forward_status() -> c_int {
    match OPENSSL_METHOD.get().and_then(|f| f.status) {
        // SAFETY: OpenSSL's own status function takes no arguments.
        Some(status) => unsafe { status() },
        None => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// opendp's own byte source, the one its samplers call.
    fn opendp_bytes(n: usize) -> Vec<u8> {
        let mut out = vec![0u8; n];
        opendp::traits::samplers::fill_bytes(&mut out).expect("opendp fill_bytes");
        out
    }

    #[test]
    fn opendp_draws_go_through_the_buffer() {
        install().expect("install");
        assert!(is_installed());
        // Warm this thread's buffer, then count OpenSSL calls for many small
        // draws: they must be far fewer than the draws.
        opendp_bytes(1);
        let before = generate_calls();
        for _ in 0..10_000 {
            opendp_bytes(3);
        }
        let calls = generate_calls() - before;
        // 30,000 bytes, 4,095 of them left in the warm buffer, the rest
        // through 4 KiB refills: 7 calls instead of 10,000.
        assert!((6..=8).contains(&calls), "{calls} OpenSSL calls");
    }

    #[test]
    fn served_bytes_are_zeroed_and_never_repeated() {
        install().expect("install");
        let mut pool = Pool::empty();
        let mut a = [0u8; 64];
        assert!(pool.take(&mut a));
        assert!(pool.bytes[..64].iter().all(|&b| b == 0), "not zeroed");
        assert_ne!(a, [0u8; 64]);
        let mut b = [0u8; 64];
        assert!(pool.take(&mut b));
        assert_ne!(a, b);
        // A request that does not fit refills rather than serving a partial
        // remainder.
        pool.next = BUFFER - 10;
        let mut c = [0u8; 32];
        let calls = generate_calls();
        assert!(pool.take(&mut c));
        assert!(generate_calls() > calls);
        assert_eq!(pool.next, 32);
    }

    /// `status` and `add` reach OpenSSL's own method through ours.
    #[test]
    fn status_and_add_are_forwarded() {
        install().expect("install");
        assert!(is_installed());
        // SAFETY: RAND_status takes no arguments.
        assert_eq!(unsafe { openssl_sys::RAND_status() }, 1);
        let extra = [7u8; 32];
        // SAFETY: `extra` is 32 readable bytes.
        unsafe { openssl_sys::RAND_add(extra.as_ptr().cast(), 32, 0.0) };
        let mut out = [0u8; 16];
        assert!(fill(&mut out));
    }

    #[test]
    fn large_requests_go_straight_to_openssl() {
        install().expect("install");
        let calls = generate_calls();
        let big = opendp_bytes(DIRECT_ABOVE + 1);
        assert!(generate_calls() > calls);
        assert!(big.iter().any(|&b| b != 0));
    }

    /// Bytes through the buffer are uniform: a chi-square test over 256
    /// values on 2 MiB drawn in the small pieces opendp asks for.
    #[test]
    fn buffered_bytes_are_uniform() {
        install().expect("install");
        let mut counts = [0u64; 256];
        let mut piece = [0u8; 7];
        let draws = (2 << 20) / piece.len();
        for _ in 0..draws {
            assert!(fill(&mut piece));
            for &b in &piece {
                counts[usize::from(b)] += 1;
            }
        }
        let n: u64 = counts.iter().sum();
        let expected = n as f64 / 256.0;
        let chi2: f64 = counts
            .iter()
            .map(|&c| (c as f64 - expected).powi(2) / expected)
            .sum();
        // 255 degrees of freedom: the 99.99th percentile is about 346.
        assert!(chi2 < 346.0, "chi-square {chi2}");
    }
}
