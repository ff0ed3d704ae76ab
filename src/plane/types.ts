/**
 * What every control plane gives the sidecar, whichever it is (mesh dir,
 * plain files, Consul; later the SPIFFE Workload API): our TLS material, the
 * intention table for our service, where upstream instances are, and a way
 * to be found. Each is read when needed and says when it changes
 * (core/watched.ts); the sidecar wires those changes once, for every plane.
 * A new control plane is one new file in this folder, touching nothing in
 * dataplane/.
 */
import type { Logger } from 'pino'
import type { Config } from '../core/config/types.js'
import type { Authorizer, Decision, IntentionsDoc, ServiceRef } from '../core/intentions/table.js'
import type { PeerIdentity } from '../tls/peer.js'
import type { Registration, Resolver } from '../core/resolver.js'
import type { Watched } from '../core/watched.js'
import type { Metrics } from '../metrics/metrics.js'
import type { TlsState } from '../tls/context.js'

/** The intention table in force for our service, and its compiled decision function. */
export interface IntentionsState {
  readonly doc: IntentionsDoc
  readonly authorize: Authorizer
}

/** One control plane. start() before reading anything; close() is idempotent. */
export interface ControlPlane {
  /** For the start line and /config: `mesh-dir`, `files`, `consul (<address>)`. */
  readonly mode: string
  /** Load everything the data plane needs; resolves when it is in hand. Bad material at start is thrown. */
  start (): Promise<void>
  /** Our SVID and trust bundle as one TLS generation; a new one on every rotation. */
  readonly tls: Watched<TlsState>
  /** Who may connect to us; null when this sidecar has no inbound listener. */
  readonly intentions: Watched<IntentionsState> | null
  /** Instances of upstreams given without an explicit list; null when this plane has no catalog. */
  readonly resolver: Resolver | null
  /**
   * When present, each verified inbound peer is decided by this instead of
   * the intention table (Consul's agent, --authorize-via-agent). Never rejects.
   */
  readonly ask?: (source: ServiceRef, peer: PeerIdentity) => Promise<Decision>
  /** Make our public address known to peers (absent: peers are told by other means). */
  readonly register?: (host: string, port: number) => Promise<Registration>
  /** While start() has not resolved: why (the agent is unreachable, say); undefined otherwise. */
  readonly notReadyReason: string | undefined
  /** SIGHUP: read everything again now. A failure keeps the current state and is logged. */
  reload (): Promise<void>
  close (): void
}

/** What a control plane is built from. */
export interface PlaneDeps {
  readonly config: Config
  readonly logger: Logger
  readonly metrics: Metrics
  /**
   * False for all but one of `--workers N` processes: they neither renew a
   * leaf nor register in the catalog, they follow what the leader writes.
   */
  readonly leader: boolean
  /** After a root change, re-issue our leaf within a random delay below this (default 30 s). */
  readonly rootChangeJitterMs?: number
  /** First retry delay towards the local agent, Consul or the SPIFFE Workload API (default 250 ms; tests shorten it). */
  readonly agentBackoffMs?: number
}
