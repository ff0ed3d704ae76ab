/**
 * Ports for tests that need a number, not a listener: the kernel's choice
 * (bind 0, note it, close), so that no test names a port something else may
 * hold. A port got this way has nothing listening on it until someone binds it.
 */
import { createServer, type AddressInfo } from 'node:net'

/** A loopback port nothing listens on right now. */
export async function freePort (): Promise<number> {
  const s = createServer()
  await new Promise<void>(resolve => s.listen(0, '127.0.0.1', resolve))
  const { port } = s.address() as AddressInfo
  await new Promise<void>(resolve => s.close(() => resolve()))
  return port
}
