/**
 * The agent's own endpoints a proxy uses besides the watched ones: who the
 * agent is (/v1/agent/self), its services (/v1/agent/services), and a
 * connect-proxy registration of ours (/v1/agent/service/register and
 * deregister), as `consul connect proxy -register` makes it.
 * Consul API docs followed: v1.20 agent (Read Configuration), agent/service
 * (List Services, Register Service, Deregister Service).
 */
import type { Endpoint } from '../core/config/types.js'
import { isUnix } from '../core/config/endpoint.js'
import { ConsulError } from '../core/errors.js'
import type { ConsulClient } from './client.js'

/** How long a one-off request to the agent may take. */
export const AGENT_REQUEST_TIMEOUT_MS = 10_000

/** What /v1/agent/self says of the agent that we use. */
export interface AgentSelf {
  readonly datacenter: string
  /** Enterprise admin partition of the agent; undefined on Consul CE. */
  readonly partition: string | undefined
}

/** GET /v1/agent/self: the agent's datacenter (and partition, on Enterprise). */
export async function agentSelf (client: ConsulClient): Promise<AgentSelf> {
  const res = await client.request('GET', '/v1/agent/self', { timeoutMs: AGENT_REQUEST_TIMEOUT_MS })
  const c = (res.body as { Config?: { Datacenter?: unknown, Partition?: unknown } } | null)?.Config
  if (typeof c?.Datacenter !== 'string' || c.Datacenter === '') throw new ConsulError('GET /v1/agent/self: the answer has no Config.Datacenter')
  return { datacenter: c.Datacenter, partition: typeof c.Partition === 'string' && c.Partition !== '' ? c.Partition : undefined }
}

/** GET /v1/agent/services: every service of the agent, by ID (validated by whoever reads it). */
export async function agentServices (client: ConsulClient): Promise<unknown> {
  return (await client.request('GET', '/v1/agent/services', { timeoutMs: AGENT_REQUEST_TIMEOUT_MS })).body
}

/** GET /v1/agent/service/<id>, once (the proxy follows it by hash afterwards). */
export async function agentService (client: ConsulClient, id: string): Promise<unknown> {
  return (await client.request('GET', `/v1/agent/service/${encodeURIComponent(id)}`, { timeoutMs: AGENT_REQUEST_TIMEOUT_MS })).body
}

/** What a registration of ours says. */
export interface ProxyRegistration {
  readonly id: string
  /** The service we stand beside: the registration is named `<service>-proxy`. */
  readonly service: string
  /** The public listener, as peers reach it. */
  readonly host: string
  readonly port: number
  /** The local app, when there is one (Proxy.LocalServiceAddress/Port, or LocalServiceSocketPath for a UNIX socket). */
  readonly app: Endpoint | null
}

/**
 * PUT /v1/agent/service/register: Kind connect-proxy, ID and Name as
 * Consul's built-in proxy makes them, and a TCP check on the public listener
 * (Consul's proxy uses a TTL check it heartbeats; a TCP check needs no
 * heartbeat and fails by itself when we are gone).
 */
export async function registerProxy (client: ConsulClient, r: ProxyRegistration): Promise<void> {
  const addr = r.host.includes(':') ? `[${r.host}]:${r.port}` : `${r.host}:${r.port}`
  await client.request('PUT', '/v1/agent/service/register', {
    timeoutMs: AGENT_REQUEST_TIMEOUT_MS,
    body: {
      Kind: 'connect-proxy',
      ID: r.id,
      Name: `${r.service}-proxy`,
      Address: r.host,
      Port: r.port,
      Proxy: { DestinationServiceName: r.service, ...(r.app === null ? {} : isUnix(r.app) ? { LocalServiceSocketPath: r.app.path } : { LocalServiceAddress: r.app.host, LocalServicePort: r.app.port }) },
      Check: { CheckID: `${r.id}-listening`, Name: 'Connect Proxy Listening', TCP: addr, Interval: '10s' }
    }
  })
}

/** PUT /v1/agent/service/deregister/<id>. */
export async function deregisterProxy (client: ConsulClient, id: string): Promise<void> {
  await client.request('PUT', `/v1/agent/service/deregister/${encodeURIComponent(id)}`, { timeoutMs: AGENT_REQUEST_TIMEOUT_MS })
}
