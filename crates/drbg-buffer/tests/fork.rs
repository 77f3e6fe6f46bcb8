//! A real `fork()`: the child must not serve the bytes its parent had
//! buffered. Alone in its own test binary so that no other test thread is
//! inside OpenSSL (holding one of its locks) when the process forks.

use std::time::{Duration, Instant};

#[test]
fn a_forked_child_never_serves_its_parents_buffered_bytes() {
    drbg_buffer::install().expect("install");
    // Fill this thread's buffer; 4,088 bytes stay unread in it.
    let mut warm = [0u8; 8];
    assert!(drbg_buffer::fill(&mut warm));

    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors pipe() writes.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    let (read_fd, write_fd) = (fds[0], fds[1]);
    // SAFETY: this test binary runs this one test, so no other thread of
    // ours holds a lock the child could need; the child only draws, writes
    // to the pipe and leaves with _exit.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let mut child = [0u8; 16];
        let ok = drbg_buffer::fill(&mut child);
        // SAFETY: the child writes its 16 bytes to the pipe it inherited and
        // exits without running the parent's destructors or test harness.
        unsafe {
            libc::write(write_fd, child.as_ptr().cast(), child.len());
            libc::_exit(if ok { 0 } else { 1 });
        }
    }
    // SAFETY: the parent closes its copy of the write end.
    unsafe { libc::close(write_fd) };
    let mut parent = [0u8; 16];
    assert!(drbg_buffer::fill(&mut parent));

    let mut child = [0u8; 16];
    // SAFETY: reads at most 16 bytes into `child`; the child's write of 16
    // bytes to a pipe is atomic.
    let n = unsafe { libc::read(read_fd, child.as_mut_ptr().cast(), child.len()) };
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut status = 0;
    loop {
        // SAFETY: waits without blocking for the child forked above.
        let done = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if done == pid {
            break;
        }
        if Instant::now() > deadline {
            // SAFETY: kills the child forked above, which has hung.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            panic!("the child did not exit");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(n, 16, "the child sent {n} bytes");
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "the child could not draw"
    );
    // Both sides served the 16 bytes after the first 8 of the parent's
    // buffer; had the child kept its copy of that buffer, they would match.
    assert_ne!(
        child, parent,
        "the child served its parent's buffered bytes"
    );
}
