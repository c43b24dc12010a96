#!/usr/bin/env bash
# Runs every test on a fresh machine: host set-up (packages, daemons, test
# images), then formatting and lint checks, then the whole test suite.
#
# With CI=true, tests that need Docker or libvirt fail when the daemon is
# missing instead of skipping.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/setup-host.sh
bash scripts/build-images.sh
bash scripts/build-vm-images.sh

echo "test: cargo fmt --check"
cargo fmt --all -- --check
echo "test: cargo clippy"
cargo clippy --locked --all-targets -- -D warnings
echo "test: cargo test"
cargo test --locked
