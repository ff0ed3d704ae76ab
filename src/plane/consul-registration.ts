/**
 * `--consul-register` (`consul-proxy -register`): our public listener as a
 * connect-proxy service of the local agent, kept there while we run, removed
 * when we stop. Consul's built-in proxy re-registers every 30 s when the
 * service is gone; here the registration is followed by a hash-based blocking
 * query instead, so a registration the agent lost (an agent restarted
 * without it, an operator's deregister) is put back as soon as the agent says
 * so, with the watch's backoff between attempts.
 */
import type { Logger } from 'pino'
import { ConsulError, toError } from '../core/errors.js'
import type { Registration } from '../core/resolver.js'
import { BlockingWatch, type ConsulClient } from '../consul/client.js'
import { deregisterProxy, registerProxy, type ProxyRegistration } from '../consul/agent.js'

/** What registering needs besides the client. */
export interface RegisterOptions {
  readonly logger: Logger
  /** First retry delay of the watch (tests shorten it). */
  readonly backoffMs?: number
}

/** Register `r`, keep it registered, and deregister on close(). */
export async function registerWithAgent (client: ConsulClient, r: ProxyRegistration, o: RegisterOptions): Promise<Registration> {
  const { logger } = o
  await registerProxy(client, r)
  logger.info({ id: r.id, address: `${r.host}:${r.port}` }, 'registered with the Consul agent')
  let closed = false
  const watch = new BlockingWatch<null>({
    client,
    path: `/v1/agent/service/${encodeURIComponent(r.id)}`,
    byHash: true,
    parse: () => null,
    onChange: () => {},
    ...(o.backoffMs === undefined ? {} : { minBackoffMs: o.backoffMs }),
    onError: err => {
      if (closed || !(err instanceof ConsulError) || !/ HTTP 404:/.test(err.message)) return // unreachable: the query retries; it tells us when the agent is back
      registerProxy(client, r).then(
        () => logger.warn({ id: r.id }, 'our registration was missing from the Consul agent; registered again'),
        (e: unknown) => logger.warn({ id: r.id, err: toError(e).message }, 'our registration is missing from the Consul agent and registering again failed; retrying')
      )
    }
  })
  return {
    close: async () => {
      closed = true
      watch.close()
      try {
        await deregisterProxy(client, r.id)
        logger.info({ id: r.id }, 'deregistered from the Consul agent')
      } catch (err) {
        logger.warn({ id: r.id, err: toError(err).message }, 'could not deregister from the Consul agent; its TCP check will fail and mark us critical')
      }
    }
  }
}

