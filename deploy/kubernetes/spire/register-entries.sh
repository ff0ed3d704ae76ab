#!/bin/sh
# Registers the SPIRE entries in entries.json (the agents' node alias, then web
# and db in Consul's SPIFFE ID form, which mesh-proxy's inbound requires) with
# the server's own CLI inside its pod. Run once, after spire-server is ready:
#   sh deploy/kubernetes/spire/register-entries.sh
# test/deploy/spire-e2e.test.ts feeds the same file, the same way (stdin), to a
# real spire-server 1.13.3.
set -eu
cd "$(dirname "$0")"
kubectl -n spire wait --for=condition=Ready pod/spire-server-0 --timeout=120s
kubectl -n spire exec -i spire-server-0 -c spire-server -- \
  /opt/spire/bin/spire-server entry create -data - < entries.json
