/** The single end-of-connection step: metrics and the one 'conn closed' line. */
import type { Logger } from 'pino'
import { isRoutineCloseError, toError } from '../core/errors.js'
import type { Direction, Metrics } from '../metrics/metrics.js'
import type { CloseReason, RelayResult } from './relay.js'

/** The `result` label of mesh_proxy_connections_total for each way a relay ends. */
const RESULT_OF: Readonly<Record<CloseReason, string>> = {
  eof: 'allowed',
  idle_timeout: 'allowed',
  close_timeout: 'allowed',
  max_lifetime: 'allowed',
  aborted: 'allowed',
  error: 'relay_error',
  revoked: 'revoked',
  peer_aborted: 'peer_aborted',
  app_aborted: 'app_aborted'
}

/**
 * Report bytes and the result, and log 'conn closed' once. `aIs` says whether
 * the relay's A side is the mesh peer ('peer': bytes A→B go to the app) or the
 * app ('app'); `access` are the connection's access-log fields (who, to what, by which rule).
 */
export function logClosed (log: Logger, r: RelayResult, metrics: Metrics, direction: Direction, aIs: 'peer' | 'app', access: Record<string, unknown>): void {
  const toApp = aIs === 'peer' ? r.bytesAtoB : r.bytesBtoA
  const fromApp = aIs === 'peer' ? r.bytesBtoA : r.bytesAtoB
  metrics.bytes(direction, toApp, fromApp)
  metrics.duration(direction, r.durationMs / 1000)
  metrics.connection(direction, RESULT_OF[r.reason])
  const fields = {
    ...access,
    bytesToApp: toApp,
    bytesFromApp: fromApp,
    durationMs: Math.round(r.durationMs),
    reason: r.reason,
    ...(r.error === undefined ? {} : { err: r.error.message })
  }
  if ((r.error !== undefined && !isRoutineCloseError(r.error)) || r.reason === 'peer_aborted') log.warn(fields, 'conn closed')
  else log.info(fields, 'conn closed')
}

/**
 * For a bug in our own per-connection flow (never a peer's doing): one 'conn
 * failed' line, then `close` ends that connection only; the process carries on.
 */
export function connBug (log: Logger, fields: Record<string, unknown>, close: () => void): (err: unknown) => void {
  return err => {
    log.error({ ...fields, err: toError(err).message }, 'conn failed')
    close()
  }
}
