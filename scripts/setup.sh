#!/usr/bin/env bash
# Installs what Bastion needs on a Debian 12 machine and builds it: apt packages (libtorch, OpenBLAS,
# PyTorch for the interop tests, a C++ toolchain, clang-format), npm dependencies, the libtorch addon and the
# TypeScript build. Idempotent, and quick and quiet (a few lines) when nothing is missing or changed.
# Needs root (or sudo) only when an apt package is missing. Set LIBTORCH_DIR to build against another
# libtorch (e.g. a PyTorch wheel's).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

say() { printf 'setup: %s\n' "$*"; }

# --- apt packages -------------------------------------------------------------------------------
packages=(build-essential python3 pkg-config curl ca-certificates ccache
          libopenblas0-pthread python3-torch python3-jinja2 clang-format)
if [ -z "${LIBTORCH_DIR:-}" ] || [ "${LIBTORCH_DIR%/}" = "/usr" ]; then packages+=(libtorch-dev); fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing ${missing[*]}"
  if [ "$(id -u)" -eq 0 ]; then sudo=(); elif command -v sudo >/dev/null; then sudo=(sudo); else
    say "these Debian packages are missing and this user cannot install them: ${missing[*]}" >&2; exit 1
  fi
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# libtorch should use OpenBLAS (2-4x faster DP steps than the reference BLAS).
blas=$(readlink -f /usr/lib/x86_64-linux-gnu/libblas.so.3 2>/dev/null || true)
case "$blas" in *openblas*) ;; *) say "warning: libblas.so.3 is $blas, not OpenBLAS (update-alternatives --config libblas.so.3-x86_64-linux-gnu)" >&2 ;; esac

# --- Node.js --------------------------------------------------------------------------------------
if ! command -v node >/dev/null || ! node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a===20&&b>=17)?0:1)'; then
  say "Node.js >= 20.17 is required (found: $(node --version 2>/dev/null || echo none)); Debian 12's nodejs is too old — install Node 20 or newer" >&2
  exit 1
fi
# Build native modules against this Node's own headers: nothing is downloaded.
node_prefix=$(cd "$(dirname "$(command -v node)")/.." && pwd)
if [ -f "$node_prefix/include/node/node.h" ]; then export npm_config_nodedir="$node_prefix"; fi

# --- npm dependencies (npm ci also builds the addon through the install script) ---------------------
stamp=node_modules/.bastion-lock.sha256
want=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  say "npm ci"
  npm ci --no-audit --no-fund --loglevel=error
  echo "$want" > "$stamp"
fi

# --- builds (incremental) -------------------------------------------------------------------------
# The addon build says "up to date" in one line when its inputs have not changed, and otherwise one
# progress line per compiled file; compiler errors reach stderr as they come.
node scripts/build-addon.mjs
say "building TypeScript"
node_modules/.bin/tsc -p tsconfig.json
say "ready: npm start (server) · npm test (tests)"
