// The words the layers share, beneath the node and the transports: what a
// transport gives the node for one connection (Conn), what the node gives back
// (Inbound, opaque), what transports ask of the node (Gate), a transport's
// group fan-out (Fanout), and the fixed labels and codes that metrics, logs and
// closes use. Nothing here imports from a layer above (docs/ARCHITECTURE.md:
// layers point one way).
import type { ClientAddress } from './clientip.js';
import type { Codec, Encoded } from './protocol/codecs.js';
import type { ClientOp, ErrorCode } from './protocol/frames.js';

export const TRANSPORTS = ['ws_text', 'ws_json', 'tcp'] as const;
export type TransportLabel = (typeof TRANSPORTS)[number];

/** Why a frame or a connection was refused: chat_frames_rejected_total. */
export const REJECT_REASONS = [
  'invalid_json',
  'invalid_op',
  'invalid_utf8',
  'binary',
  'too_large',
  'rate_limited',
  'queue_full',
  'origin',
  'subprotocol',
  'ip_limit',
  'draining',
] as const;
export type RejectReason = (typeof REJECT_REASONS)[number];

/** Why an admission (create, password check, queued input) was refused: chat_admission_refusals_total. */
export const ADMISSION_REASONS = ['create_budget', 'auth_budget', 'lockout', 'busy', 'group_limit', 'queue_bytes'] as const;
export type AdmissionReason = (typeof ADMISSION_REASONS)[number];

/** WebSocket close codes (RFC 6455 and the application range); TCP clients get a line and FIN instead. */
export const CLOSE_NORMAL = 1000;
export const CLOSE_POLICY = 1008;
export const CLOSE_INTERNAL = 1011;
export const CLOSE_RESTART = 1012;
/** The engine failed mid-join (e.g. the history read of a resume): come back later (RFC 6455 1013 Try Again Later). */
export const CLOSE_TRY_AGAIN = 1013;
export const CLOSE_MENU_TIMEOUT = 4408;

/** What a transport gives the node for one connection. */
export interface Conn {
  readonly codec: Codec;
  readonly transport: TransportLabel;
  /** The client's address (after trusted-proxy resolution): logs, per-address budgets and limits. */
  readonly address: ClientAddress;
  /** Write one encoded message; the transport adds its framing. */
  write(msg: string): void;
  /** Close once queued writes are out. */
  end(code: number, reason: string): void;
  /** Join/leave this connection's group topic for fan-out. */
  subscribe(groupId: string): void;
  unsubscribe(groupId: string): void;
}

/** A transport's group fan-out: write to every local member but `exclude`, taking only the encodings it has members for. */
export interface Fanout {
  /** `isMessage`: a chat message (counted as delivered), not a notice. */
  publish(groupId: string, out: Encoded, exclude: Conn | null, isMessage: boolean): void;
}

/** One frame (or line) of client input as a transport decoded it. */
export type ClientInput = { kind: 'text'; text: string } | { kind: 'op'; op: ClientOp };

/** What the node hands a transport for one connection: where its input goes. The session behind it stays the node's. */
export interface Inbound {
  /** The connection's ID (`node/n`), for logs. */
  readonly id: string;
  /** Decoded input; `bytes`: its size on the wire. */
  input(input: ClientInput, bytes: number): void;
  /** A frame refused while decoding: the client gets `code` and `message`, the metric `reason`. */
  reject(code: ErrorCode, reason: RejectReason, message: string): void;
  /** The socket is gone (closed by either side). */
  closed(): void;
}

/** What the transports ask of the node. */
export interface Gate {
  /** Count a new connection against its address; false = refuse it (over MAX_CONNECTIONS_PER_IP). */
  admit(address: ClientAddress): boolean;
  connect(conn: Conn): Inbound;
  isReady(): boolean;
  isDraining(): boolean;
}

/** One server HTTP API request (PROTOCOL.md §3b) as the transport read it. */
export interface ApiRequest {
  /** Upper case: GET, POST, DELETE … */
  method: string;
  /** The URL path, without the query. */
  path: string;
  /** The query string, without `?`. */
  query: string;
  /** The Authorization header ('' when absent). */
  authorization: string;
  /** The body's bytes (empty when none), or `too_large`: it passed `maxBodyBytes` and was not read on. */
  body: Uint8Array | 'too_large';
}

export interface ApiResponse {
  status: number;
  /** JSON, or null for no body (204). */
  body: string | null;
}

/** What the HTTP transport asks of the server API: it routes every `/api/` request here. */
export interface ApiPort {
  /** Bodies past this many bytes are not read (the answer is 413, or 401 first). */
  readonly maxBodyBytes: number;
  handle(req: ApiRequest): Promise<ApiResponse>;
}
