// The server HTTP API (PROTOCOL.md §3b): what the application behind the chat
// may do without a connection. The transport (transport/uws.ts) only reads
// requests and writes answers; routing, the key check, validation and the
// engine work are here, behind the ApiPort (ports.ts).
//
// Calls are not subject to per-address budgets (the caller holds a key); they
// are bounded by API_MAX_INFLIGHT per node and the body by MAX_FRAME_BYTES.
// The key is compared in constant time and never logged or exported.
import { createHash, timingSafeEqual } from 'node:crypto';
import type { Calls } from './calls.js';
import type { Config } from './config.js';
import { EngineUnavailableError, isNoGroupError, type Broker, type GroupStore, type PresenceManager } from './engine/engine.js';
import { isGroupId, type ChatMessage } from './engine/model.js';
import { errText, type Logger } from './log.js';
import type { Metrics } from './metrics.js';
import type { ApiPort, ApiRequest, ApiResponse } from './ports.js';
import type { ErrorCode } from './protocol/frames.js';
import { decodeUtf8 } from './protocol/hygiene.js';
import * as T from './protocol/text.js';
import { cleanName, cleanText } from './session.js';

/** What the API needs of the engine. */
export type ApiEngine = Pick<GroupStore, 'getGroup' | 'removeGroup'> & Pick<Broker, 'publish'> & Pick<PresenceManager, 'members'>;

/** The creator recorded for groups made through the API (they have no member behind them). */
const API_CREATOR = 'api';

/** Route templates: the `route` label of chat_api_requests_total (never the path a client sent). */
export const API_ROUTES = {
  create: 'POST /api/v1/groups',
  publish: 'POST /api/v1/groups/{id}/messages',
  members: 'GET /api/v1/groups/{id}/members',
  history: 'GET /api/v1/groups/{id}/history',
  remove: 'DELETE /api/v1/groups/{id}',
  unknown: 'unknown',
} as const;
type Route = keyof typeof API_ROUTES;

type ApiError = 'unauthorized' | 'not_found' | 'invalid_input' | 'too_large' | 'rate_limited' | 'unavailable' | 'group_limit';
const STATUS: Record<ApiError, number> = {
  unauthorized: 401,
  not_found: 404,
  invalid_input: 400,
  too_large: 413,
  rate_limited: 429,
  unavailable: 503,
  group_limit: 503,
};

const json = (status: number, v: unknown): ApiResponse => ({ status, body: JSON.stringify(v) });
const fail = (error: ApiError, message: string): ApiResponse => json(STATUS[error], { error, message });

/** Which route a method and path name, and the group ID in it (still to be checked: canonical or not). */
function route(method: string, path: string): { route: Route; id: string | null } {
  const p = path.length > 1 && path.endsWith('/') ? path.slice(0, -1) : path;
  if (p === '/api/v1/groups') return { route: method === 'POST' ? 'create' : 'unknown', id: null };
  const m = /^\/api\/v1\/groups\/([^/]+)(?:\/(messages|members|history))?$/.exec(p);
  if (!m) return { route: 'unknown', id: null };
  const id = m[1] as string;
  const sub = m[2];
  if (sub === undefined) return { route: method === 'DELETE' ? 'remove' : 'unknown', id };
  if (sub === 'messages') return { route: method === 'POST' ? 'publish' : 'unknown', id };
  return { route: method === 'GET' ? (sub as 'members' | 'history') : 'unknown', id };
}

const digest = (s: string): Buffer => createHash('sha256').update(s, 'utf8').digest();

/** A JSON object body, or null. */
function objectBody(bytes: Uint8Array): Record<string, unknown> | null {
  const text = decodeUtf8(bytes);
  if (text === undefined) return null;
  try {
    const v: unknown = JSON.parse(text);
    return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

/** A query parameter that must be a positive integer when present: undefined absent, null malformed. */
function positiveParam(q: URLSearchParams, key: string): number | undefined | null {
  const all = q.getAll(key);
  if (all.length === 0) return undefined;
  const v = all[0] as string;
  if (all.length > 1 || !/^[1-9][0-9]{0,15}$/.test(v)) return null;
  const n = Number(v);
  return Number.isSafeInteger(n) ? n : null;
}

export class Api implements ApiPort {
  readonly maxBodyBytes: number;
  /** SHA-256 of each key: compared in constant time, and the same length whatever a client sends. */
  private readonly keys: Buffer[];
  private inflight = 0;

  constructor(
    private readonly engine: ApiEngine,
    private readonly calls: Pick<Calls, 'perform' | 'historyPage'>,
    private readonly config: Config,
    private readonly log: Logger,
    private readonly metrics: Metrics,
  ) {
    this.keys = (config.apiKeys ?? []).map(digest);
    this.maxBodyBytes = config.maxFrameBytes;
  }

  get enabled(): boolean {
    return this.keys.length > 0;
  }

  async handle(req: ApiRequest): Promise<ApiResponse> {
    const { route: r, id } = route(req.method, req.path);
    let res: ApiResponse;
    if (!this.enabled) res = fail('not_found', T.HTTP_NOT_FOUND);
    else if (!this.authorized(req.authorization)) res = fail('unauthorized', T.API_UNAUTHORIZED);
    else if (this.inflight >= this.config.apiMaxInflight) res = fail('rate_limited', T.API_BUSY);
    else {
      this.inflight++;
      try {
        res = await this.run(r, id, req);
      } catch (e) {
        if (e instanceof EngineUnavailableError) this.log.warn({ route: API_ROUTES[r] }, 'api: engine unavailable');
        else this.log.error({ route: API_ROUTES[r], err: errText(e) }, 'api call failed');
        this.metrics.engineErrors.inc({ op: `api_${r}` });
        res = fail('unavailable', T.UNAVAILABLE);
      } finally {
        this.inflight--;
      }
    }
    this.metrics.apiRequests.inc({ route: API_ROUTES[r], status: String(res.status) });
    return res;
  }

  /** `Bearer <key>` against every key, each compared in constant time (no early exit between keys). */
  private authorized(header: string): boolean {
    const m = /^Bearer +(\S+) *$/i.exec(header);
    if (!m) return false;
    const got = digest(m[1] as string);
    let ok = false;
    for (const k of this.keys) ok = timingSafeEqual(got, k) || ok;
    return ok;
  }

  private async run(r: Route, id: string | null, req: ApiRequest): Promise<ApiResponse> {
    if (r === 'unknown') return fail('not_found', T.API_NO_ROUTE);
    if (req.body === 'too_large') return fail('too_large', T.API_TOO_LARGE);
    if (r === 'create') return this.create(req.body);
    // An ID that is not canonical ("007", "1e3") names no group: never a lookup.
    if (id === null || !isGroupId(id) || (await this.engine.getGroup(id)) === null) return fail('not_found', T.API_NO_GROUP);
    switch (r) {
      case 'publish':
        return this.publish(id, req.body);
      case 'members':
        return json(200, { groupId: id, members: await this.engine.members(id) });
      case 'history':
        return this.history(id, req.query);
      case 'remove':
        return this.remove(id);
    }
  }

  private async create(body: Uint8Array): Promise<ApiResponse> {
    const o = objectBody(body);
    if (o === null) return fail('invalid_input', T.API_BODY_JSON);
    const password = o['password'];
    if (typeof password !== 'string' || password.length === 0) return fail('invalid_input', T.API_CREATE_FIELDS);
    // Through the node's password queue like any create; exempt from per-address budgets (§3b).
    const r = await this.calls.perform(
      { memberId: 'api', address: { ip: 'api', key: 'api', exempt: true }, gone: () => false },
      { call: 'create', name: API_CREATOR, password },
    );
    if (r.ok) return 'groupId' in r ? json(201, { groupId: r.groupId }) : fail('unavailable', T.UNAVAILABLE);
    return fail(this.apiCode(r.code), r.message);
  }

  private apiCode(code: ErrorCode): ApiError {
    switch (code) {
      case 'group_limit':
      case 'rate_limited':
      case 'invalid_input':
      case 'too_large':
        return code;
      default:
        return 'unavailable'; // busy (the password queue), unavailable
    }
  }

  private async publish(groupId: string, body: Uint8Array): Promise<ApiResponse> {
    const o = objectBody(body);
    if (o === null) return fail('invalid_input', T.API_BODY_JSON);
    const rawFrom = o['from'];
    const rawText = o['text'];
    if (typeof rawFrom !== 'string' || typeof rawText !== 'string') return fail('invalid_input', T.API_MESSAGE_FIELDS);
    // The same cleaning and limits as a member's name and chat line.
    const limits = { maxNameLength: this.config.maxNameLength, maxTextLength: this.config.maxTextLength };
    const from = cleanName(rawFrom, limits);
    if ('error' in from) return fail('invalid_input', from.error);
    const text = cleanText(rawText, limits);
    if ('empty' in text) return fail('invalid_input', T.EMPTY_MESSAGE);
    if ('tooLong' in text) return fail('too_large', T.TOO_LARGE);
    let seq: number;
    try {
      seq = (await this.engine.publish(groupId, { from: from.name, text: text.text, ts: Date.now(), origin: `api/${this.config.nodeId}`, api: true })).seq;
    } catch (e) {
      // Removed between the lookup and the publish.
      if (isNoGroupError(e)) return fail('not_found', T.API_NO_GROUP);
      throw e;
    }
    this.metrics.published.inc();
    return json(200, { groupId, seq });
  }

  private async history(groupId: string, query: string): Promise<ApiResponse> {
    const q = new URLSearchParams(query);
    // An empty parameter (`?before=`) is the same as none.
    for (const k of ['before', 'limit']) if (q.get(k) === '') q.delete(k);
    const before = positiveParam(q, 'before');
    const limit = positiveParam(q, 'limit');
    if (before === null || limit === null) return fail('invalid_input', T.HISTORY_FIELDS);
    const page = await this.calls.historyPage(groupId, before ?? null, limit ?? null);
    const messages = page.messages.map((m: ChatMessage) => ({ seq: m.seq, from: m.from, text: m.text, ts: m.ts, ...(m.api ? { api: true } : {}) }));
    return json(200, { groupId, messages, more: page.more });
  }

  private async remove(groupId: string): Promise<ApiResponse> {
    if (!(await this.engine.removeGroup(groupId))) return fail('not_found', T.API_NO_GROUP);
    this.log.info({ groupId }, '[CHAT CLOSED BY API]');
    return { status: 204, body: null };
  }
}
