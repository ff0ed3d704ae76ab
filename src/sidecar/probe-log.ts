/** The TLS probe (tls/probe.ts) once per process, with the slower paths said once, at debug. */
import type { Logger } from 'pino'
import { probeTls, tlsProbed } from '../tls/probe.js'

/** Probe (once per process); the first caller logs what this Node lacks. */
export async function probeTlsOnce (log: Logger): Promise<void> {
  const first = !tlsProbed()
  const caps = await probeTls()
  if (!first) return
  if (!caps.x509KeepsChain) log.debug({ node: process.version }, 'tls: this Node shortens a peer chain once its leaf is read as X509Certificate; every new peer costs a detailed certificate chain')
  if (!caps.endTracking) log.debug({ node: process.version }, 'tls: this Node cannot tell close_notify from a bare TCP close; an EOF from a peer is taken as clean (a reset is still an abort)')
}
