#!/usr/bin/env bash
# Builds tokio-tungstenite's examples/server.rs, unchanged, from the copy inside the crate:
# a throwaway cargo project in $BENCH_TMP depends on the crate (and on what the example uses,
# with the versions and tokio features of the crate's own dev-dependencies), fetches it, and
# copies the example out of the downloaded crate source as its binary.
source "$(dirname "$0")/../common.sh"
VERSION=0.30.0
dir="$BENCH_TMP/tokio-tungstenite"
mkdir -p "$dir"
cat > "$dir/Cargo.toml" <<TOML
[package]
name = "tokio-tungstenite-chat"
version = "0.0.0"
edition = "2021"
publish = false

[[bin]]
name = "server"
path = "server.rs"

[dependencies]
tokio-tungstenite = "=$VERSION"
futures-util = { version = "0.3.28", default-features = false, features = ["sink", "std"] }
futures-channel = "0.3.28"
tokio = { version = "1.27.0", default-features = false, features = ["io-std", "macros", "net", "rt-multi-thread", "time"] }

[workspace]
TOML
cd "$dir"
[ -f server.rs ] || touch server.rs # cargo fetch wants the target to exist
cargo fetch --quiet
src="$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/tokio-tungstenite-$VERSION | head -1)"
cp "$src/examples/server.rs" server.rs
cmp "$src/examples/server.rs" server.rs
cargo build --release --quiet
