/**
 * The one place where SIGTERM, SIGINT and SIGHUP become a policy, for a
 * sidecar process and for the `--workers N` primary alike:
 *
 * - the first SIGTERM or SIGINT: drain (stop taking connections, let the live
 *   ones finish);
 * - every later SIGTERM or SIGINT: close now;
 * - SIGHUP: reload.
 *
 * The source is any emitter of those event names: `process`, a worker's
 * channel from its primary (worker.ts), or a test's EventEmitter.
 */
import type { EventEmitter } from 'node:events'

export type StopSignal = 'SIGTERM' | 'SIGINT'

/** What each signal does. */
export interface SignalPolicy {
  /** The first SIGTERM or SIGINT. */
  readonly drain: (signal: StopSignal) => void
  /** A SIGTERM or SIGINT after the first. */
  readonly closeNow: (signal: StopSignal) => void
  /** SIGHUP. */
  readonly reload: () => void
}

/** The listeners on a source; dispose() removes them (once; later calls do nothing). */
export interface SignalWatch {
  /** Stop signals seen so far. */
  readonly stops: number
  dispose (): void
}

/** Listen to `source` with `policy` until dispose(). */
export function watchSignals (source: EventEmitter | NodeJS.EventEmitter, policy: SignalPolicy): SignalWatch {
  let stops = 0
  let disposed = false
  const onStop = (signal: StopSignal) => (): void => {
    if (stops++ === 0) policy.drain(signal); else policy.closeNow(signal)
  }
  const onTerm = onStop('SIGTERM')
  const onInt = onStop('SIGINT')
  const onHup = (): void => { policy.reload() }
  source.on('SIGTERM', onTerm)
  source.on('SIGINT', onInt)
  source.on('SIGHUP', onHup)
  return {
    get stops () { return stops },
    dispose () {
      if (disposed) return
      disposed = true
      source.off('SIGTERM', onTerm)
      source.off('SIGINT', onInt)
      source.off('SIGHUP', onHup)
    }
  }
}
