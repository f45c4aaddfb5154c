#!/usr/bin/env bash
# `paytokens token` served from its directory store, against `paytokens
# --version` (a process start and nothing else), timed as whole processes,
# interleaved, in the same run. One token is minted first from the sandbox,
# which is then stopped: every timed run is served by the store alone.
#
#   cargo build --release --features cli && bash benches/cli-warm.sh [BIN] [RUNS]
#
# Writes only to a temporary directory. Prints each median and the ratio.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-target/release/paytokens}
runs=${2:-300}
work=$(mktemp -d)
trap 'kill "$sandbox" 2> /dev/null || true; rm -rf "$work"' EXIT
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$bin" sandbox --port "$port" > "$work/banner" 2>&1 &
sandbox=$!
for _ in $(seq 50); do
  grep -q '^singapay' "$work/banner" 2> /dev/null && break
  sleep 0.1
done
field() { awk -v want="$1" '/^autopay /{p=1} p && $0 ~ "^  "want":" {sub("^  "want": *", ""); print; exit}' "$work/banner"; }
export PAYTOKENS_CACHE="file:$work/store"
export PAYTOKENS_CLIENT_SECRET=$(field "client secret")
args=(token autopay --base-url "$(field "base URL")" --client-id "$(field "client id")")
first=$("$bin" "${args[@]}")
kill "$sandbox"
wait "$sandbox" 2> /dev/null || true
python3 - "$bin" "$runs" "$first" "${args[@]}" <<'PY'
import statistics, subprocess, sys, time
bin, runs, first, args = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4:]
commands = {"token": [bin, *args], "version": [bin, "--version"]}
times = {name: [] for name in commands}
for i in range(runs):
    for name in (("token", "version") if i % 2 == 0 else ("version", "token")):
        start = time.perf_counter()
        out = subprocess.run(commands[name], capture_output=True, check=True)
        times[name].append(time.perf_counter() - start)
        if name == "token" and out.stdout.decode().strip() != first:
            sys.exit("paytokens token printed another token: the store did not serve it")
token, version = (statistics.median(times[n]) * 1000 for n in ("token", "version"))
print(f"paytokens token (warm, directory store): median {token:.2f} ms over {runs} runs")
print(f"paytokens --version:                     median {version:.2f} ms over {runs} runs")
print(f"ratio: {token / version:.2f}")
PY
