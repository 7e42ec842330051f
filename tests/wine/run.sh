#!/usr/bin/env bash
# The tutorial's examples on Windows: builds them and tests/examples.rs for
# x86_64-pc-windows-gnu (Debian's mingw-w64 links them), then runs that test under Debian's
# Wine: each example .exe is started and talked to over 127.0.0.1, as on Linux.
# Needs: rustup target x86_64-pc-windows-gnu, x86_64-w64-mingw32-gcc, /usr/lib/wine/wine64
# (.ci/run installs them). Usage: bash tests/wine/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."

triple=x86_64-pc-windows-gnu
out=target/$triple/debug
cargo build --locked --target "$triple" --examples --test examples

# Wine 8 has no bcryptprimitives.dll, which every Rust program imports: a stub beside the .exe
# files (see bcryptprimitives.c).
x86_64-w64-mingw32-gcc -shared -O2 -s -o "$out/examples/bcryptprimitives.dll" \
    tests/wine/bcryptprimitives.c tests/wine/bcryptprimitives.def -lbcrypt
cp "$out/examples/bcryptprimitives.dll" "$out/deps/"

# A prefix of our own, made once (about 40 s) and kept in target/; no window, no log noise.
export WINEPREFIX="$PWD/target/wine-prefix" WINEDEBUG=-all DISPLAY=
# cargo cannot run under Wine: the examples are built above, the test is told so.
export WSCHAT_EXAMPLES_BUILT=1
export CARGO_TARGET_X86_64_PC_WINDOWS_GNU_RUNNER=/usr/lib/wine/wine64
cargo test --locked --target "$triple" --test examples
