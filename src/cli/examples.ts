/**
 * Worked examples for `mesh-proxy --help`, `intention --help` and `ca --help`
 * (run's are beside its command in main.ts): what a newcomer types first.
 */

export const ROOT_HELP = `
Examples:
  # see it work: a demo mesh on loopback, one allowed and one denied connection
  mesh-proxy demo

  # by hand: a mesh dir with its CA, web allowed to reach db (the default is deny)
  mesh-proxy ca init --mesh-dir ./mesh
  mesh-proxy intention create -allow web db --mesh-dir ./mesh

  # db's and web's sidecars (each needs its own --admin port; see mesh-proxy run --help)
  mesh-proxy run --service db --listen 127.0.0.1:21000 --to 127.0.0.1:5432 --mesh-dir ./mesh --admin 127.0.0.1:19000
  mesh-proxy run --service web --upstream db:9191 --mesh-dir ./mesh --admin 127.0.0.1:19001

  # shell completion, the version
  source <(mesh-proxy completion bash)
  mesh-proxy --version

Every command has its own --help (mesh-proxy help <command> too).
Exit codes: 0 ok, 1 failure (or Denied for intention check), 2 usage or configuration error.`

export const INTENTION_HELP = `
Examples:
  # who may connect to whom; with no intention matching, the default policy (deny) decides
  mesh-proxy intention create -allow web db
  mesh-proxy intention create -deny billing db -description "billing reads through the API"

  # would web reach db, and why (exit 0 Allowed, 1 Denied)
  mesh-proxy intention check web db -explain

  # everything that applies to db, in precedence order
  mesh-proxy intention match db

  # allow by default while rolling out, then back to deny
  mesh-proxy intention default-policy allow
  mesh-proxy intention default-policy deny

The mesh dir is --mesh-dir, or MESH_DIR, or ./mesh. Running sidecars pick up
every change (see --enforce-on-change for live connections).`

export const CA_HELP = `
Examples:
  # a new mesh dir's root CA (refuses to replace an existing one)
  mesh-proxy ca init --mesh-dir ./mesh --trust-domain example.consul

  # the trust bundle for a peer outside the mesh dir
  mesh-proxy ca bundle --mesh-dir ./mesh > bundle.pem
  mesh-proxy ca bundle --mesh-dir ./mesh --format spiffe

  # a root rotation: a new root cross-signed by the old, both trusted...
  mesh-proxy ca rotate --mesh-dir ./mesh
  # ...then, once every sidecar's leaf comes from the new root, drop the old one
  mesh-proxy ca retire-old --mesh-dir ./mesh

Leaves: mesh-proxy cert issue <service> or cert sign --csr <file> (mesh-proxy cert --help).`

export const CONSUL_PROXY_HELP = `
Examples:
  # as \`consul connect proxy -sidecar-for web\`: everything from web's sidecar registration
  CONSUL_HTTP_ADDR=127.0.0.1:8500 mesh-proxy consul-proxy -sidecar-for web

  # a registration by its ID; the agent decides each inbound connection
  mesh-proxy consul-proxy -proxy-id web-sidecar-proxy -authorize-via-agent

  # no registration: Consul's flags, registered with the agent while running
  mesh-proxy consul-proxy -service web -service-addr 127.0.0.1:8080 -listen :21000 -upstream db:9191 -register

Flags take one dash, as Consul's (two work too). Details: docs/consul-proxy.md.`
