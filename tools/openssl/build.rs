//! Passes the target and host triples to the program: `openssl-src` needs
//! them, and only build scripts are told them.
fn main() {
    for var in ["TARGET", "HOST"] {
        let value = std::env::var(var).expect("cargo sets TARGET and HOST for build scripts");
        println!("cargo:rustc-env=OPENSSL_BUILD_{var}={value}");
    }
}
