/**
 * The bounds of pooled tunnels, in one place (docs/tunnels.md). HTTP/2 flow
 * control keeps one slow stream from stalling its siblings: a stream may have
 * TUNNEL_STREAM_WINDOW bytes in flight unread, the whole tunnel
 * TUNNEL_SESSION_WINDOW, so a stream whose app stops reading holds at most its
 * own window of the tunnel's.
 */
import type { Settings } from 'node:http2'

/** Concurrent streams one tunnel carries; the outbound opens another tunnel beyond it. */
export const TUNNEL_MAX_STREAMS = 128
/** Tunnels one outbound keeps to one upstream instance; beyond them, streams queue on the least loaded. */
export const TUNNEL_MAX_PER_INSTANCE = 4
/** Per-stream receive window (HTTP/2 SETTINGS_INITIAL_WINDOW_SIZE). */
export const TUNNEL_STREAM_WINDOW = 4 << 20
/** Per-tunnel receive window (the connection-level window, set after the preface). */
export const TUNNEL_SESSION_WINDOW = 32 << 20

/** Largest DATA frame each end accepts (HTTP/2 default 16 KiB): a 64 KiB read from the app goes as one frame, not four. */
export const TUNNEL_MAX_FRAME = 256 << 10

/** The SETTINGS both ends send. */
export const TUNNEL_SETTINGS: Settings = {
  initialWindowSize: TUNNEL_STREAM_WINDOW,
  maxFrameSize: TUNNEL_MAX_FRAME,
  maxConcurrentStreams: TUNNEL_MAX_STREAMS,
  enablePush: false
}
