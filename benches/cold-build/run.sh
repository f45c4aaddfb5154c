#!/usr/bin/env bash
# Cold debug builds of two tiny crates, each in a fresh target directory,
# in both orders: one on paytokens (default features), one on oauth2 5 and
# reqwest 0.13 (rustls). Prints each time and the ratio. Dependencies are
# fetched first, so only compiling is timed. Writes only under $OUT
# (default: target/cold-build of the workspace).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out=${OUT:-$root/target/cold-build}
rm -rf "$out" && mkdir -p "$out"
for crate in paytokens-user oauth2-user; do
  cp -r "$here/$crate" "$out/$crate"
  sed -i "s|path = \"../../..\"|path = \"$root\"|" "$out/$crate/Cargo.toml"
  (cd "$out/$crate" && cargo fetch --quiet)
done
build() {
  rm -rf "$out/$1/target"
  local start end
  start=$(date +%s.%N)
  (cd "$out/$1" && CARGO_TARGET_DIR="$out/$1/target" cargo build --quiet --offline)
  end=$(date +%s.%N)
  echo "$1 $(echo "$end - $start" | bc)"
}
{
  build paytokens-user; build oauth2-user
  build oauth2-user; build paytokens-user
} | tee "$out/times"
awk '{ t[$1] += $2 } END {
  printf "paytokens-user %.1f s, oauth2-user %.1f s (two builds each): ratio %.3f\n",
    t["paytokens-user"] / 2, t["oauth2-user"] / 2, t["paytokens-user"] / t["oauth2-user"] }' "$out/times"
