// /healthz: the process answers. /readyz: accepting clients and the engine is reachable.
export interface HttpAnswer {
  status: string;
  body: string;
}

export const healthz = (): HttpAnswer => ({ status: '200 OK', body: 'ok\n' });

export function readyz(node: { isReady(): boolean; isDraining(): boolean }): HttpAnswer {
  if (node.isReady()) return { status: '200 OK', body: 'ready\n' };
  return { status: '503 Service Unavailable', body: node.isDraining() ? 'draining\n' : 'engine unavailable\n' };
}
