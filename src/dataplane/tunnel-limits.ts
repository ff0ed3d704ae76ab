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
export const TUNNEL_STREAM_WINDOW = 1 << 20
/** Per-tunnel receive window (the connection-level window, set after the preface). */
export const TUNNEL_SESSION_WINDOW = 16 << 20

/** Largest DATA frame each end accepts (HTTP/2 default 16 KiB): a 64 KiB read from the app goes as one frame, not four. */
export const TUNNEL_MAX_FRAME = 256 << 10

/**
 * What node:http2 lets one session hold (MB) before it refuses new streams
 * (default 10): above the tunnel window, so that a full window of unread data
 * never makes a tunnel refuse its next stream.
 */
export const TUNNEL_SESSION_MEMORY_MB = 64

/** The SETTINGS both ends send. */
export const TUNNEL_SETTINGS: Settings = {
  initialWindowSize: TUNNEL_STREAM_WINDOW,
  maxFrameSize: TUNNEL_MAX_FRAME,
  maxConcurrentStreams: TUNNEL_MAX_STREAMS,
  enablePush: false
}
