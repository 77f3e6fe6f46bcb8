//! `openssl-build DIR`: builds OpenSSL from `openssl-src` into `DIR` (its
//! `install/` then holds `include/` and `lib/`) and prints the version built.

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let Some(dir) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: openssl-build DIR");
        return ExitCode::FAILURE;
    };
    let artifacts = openssl_src::Build::new()
        .target(env!("OPENSSL_BUILD_TARGET"))
        .host(env!("OPENSSL_BUILD_HOST"))
        .out_dir(&dir)
        .build();
    println!(
        "built OpenSSL {} into {}",
        openssl_src::version(),
        artifacts.lib_dir().parent().unwrap_or(&dir).display()
    );
    ExitCode::SUCCESS
}
