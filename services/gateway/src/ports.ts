// The words the layers share, at the bottom of them all: what a transport gives
// the node for one connection (Conn), a transport's group fan-out (Fanout), and
// the fixed labels and codes that metrics, logs and closes use. Nothing here
// imports from a layer above (docs/ARCHITECTURE.md: layers point one way).
import type { ClientAddress } from './clientip.js';
import type { Codec } from './protocol/codecs.js';

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

/** A transport's group fan-out: encode once per codec, write to every local member but `exclude`. */
export interface Fanout {
  /** `isMessage`: a chat message (counted as delivered), not a notice. */
  publish(groupId: string, text: string, json: string, exclude: Conn | null, isMessage: boolean): void;
}
