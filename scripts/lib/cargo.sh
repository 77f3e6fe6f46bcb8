# Sourced by the scripts: where cargo puts this checkout's binaries, wherever
# CARGO_TARGET_DIR (or a cargo config's build.target-dir) sends them.
#
#   . scripts/lib/cargo.sh
#   bin=$(rollcall_bin release)      # after `cargo build --release -p rollcall`

# The target folder cargo uses for this workspace.
cargo_target_dir() {
  cargo metadata --format-version 1 --no-deps \
    | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])'
}

# The `rollcall` binary of a profile's folder (`debug`, `release`, ...).
rollcall_bin() {
  echo "$(cargo_target_dir)/$1/rollcall"
}
