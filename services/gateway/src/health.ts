// /healthz: the process answers. /readyz: accepting clients and the engine is reachable.
import * as T from './protocol/text.js';

export interface HttpAnswer {
  status: string;
  body: string;
}

export const healthz = (): HttpAnswer => ({ status: '200 OK', body: `${T.HTTP_OK}\n` });

export function readyz(node: { isReady(): boolean; isDraining(): boolean }): HttpAnswer {
  if (node.isReady()) return { status: '200 OK', body: `${T.HTTP_READY}\n` };
  return { status: '503 Service Unavailable', body: `${node.isDraining() ? T.HTTP_DRAINING : T.HTTP_ENGINE_DOWN}\n` };
}
