// /healthz: the process answers. /readyz: accepting clients and the engine is reachable.
// /readyz/balancer: the load balancer's view of the same state, where a drain is not a failure.
import * as T from './protocol/text.js';

export interface HttpAnswer {
  status: string;
  body: string;
}

interface ReadyState {
  isReady(): boolean;
  isDraining(): boolean;
}

export const healthz = (): HttpAnswer => ({ status: '200 OK', body: `${T.HTTP_OK}\n` });

/** PROTOCOL.md §4: 200 while ready; 503 while draining or while the engine is down. */
export function readyz(node: ReadyState): HttpAnswer {
  if (node.isReady()) return { status: '200 OK', body: `${T.HTTP_READY}\n` };
  return { status: '503 Service Unavailable', body: `${node.isDraining() ? T.HTTP_DRAINING : T.HTTP_ENGINE_DOWN}\n` };
}

/**
 * For HAProxy's check (`http-check disable-on-404`): 200 while ready; 404 while draining, so
 * the balancer stops sending new clients but keeps the node's open sessions (the node closes
 * them itself with 1012 over DRAIN_SECONDS: `on-marked-down shutdown-sessions` would cut them
 * at once, seen by clients as 1006); 503 while the engine is down, so the balancer marks the
 * node down and cuts its sessions, and its clients resume on a node that can reach Redis.
 */
export function balancerCheck(node: ReadyState): HttpAnswer {
  if (node.isDraining()) return { status: '404 Not Found', body: `${T.HTTP_DRAINING}\n` };
  return readyz(node);
}
