#!/usr/bin/env bash
# Installs the Debian packages CODITECT's sandboxes and test servers need. Idempotent and non-interactive:
# does nothing when everything is present, and skips (exit 0, with a note) when not root
# or when apt-get is missing. Usage: bash scripts/install-system-deps.sh
set -euo pipefail

# command -> Debian package that provides it
declare -A NEEDED=(
  [bwrap]=bubblewrap      # the "process" sandbox
  [redis-server]=redis-server  # tests start their own Redis servers and a 3-node cluster
  [redis-cli]=redis-tools      # creates the test cluster
  [git]=git                    # missions commit their result on a branch
  [chromium]=chromium          # the web view's browser tests (tests/ui/test_browser.py)
  [chromedriver]=chromium-driver  # selenium drives chromium through it (never a downloaded one)
)

missing=()
for cmd in "${!NEEDED[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${NEEDED[$cmd]}")
done
if [ "${#missing[@]}" -eq 0 ]; then
  exit 0
fi
# unique package names
mapfile -t packages < <(printf '%s\n' "${missing[@]}" | sort -u)

if [ "$(id -u)" -ne 0 ]; then
  echo "install-system-deps: not root; skipping. Missing: ${packages[*]} (sudo apt-get install ${packages[*]})" >&2
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "install-system-deps: apt-get not found; install manually: ${packages[*]}" >&2
  exit 0
fi

export DEBIAN_FRONTEND=noninteractive
echo "install-system-deps: installing ${packages[*]} ..." >&2
if ! apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null 2>&1; then
  # The package lists may be missing or stale (fresh machine): refresh once and retry.
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
fi
