// A TCP relay for the client tests: in front of one gateway, it can swallow what the server sends
// or cut every link at once (no close frame, no FIN from the server: like a dead node or network).
import { createServer, connect, type Server, type Socket } from 'node:net';

/**
 * A TCP relay in front of a gateway that can swallow everything the server sends (`mute`): the
 * client's frames still arrive and are acted on, but no ack comes back. `cut()` then ends the link
 * without a close frame, like a dead node or network.
 */
export class MuteRelay {
  muted = false;
  private readonly sockets = new Set<Socket>();
  private constructor(
    private readonly server: Server,
    readonly port: number,
  ) {}

  /** `proxyV1`: open each upstream link with a PROXY v1 line (for a gateway that trusts loopback as its proxy). */
  static async start(target: number, opts: { proxyV1?: boolean } = {}): Promise<MuteRelay> {
    let relay: MuteRelay | null = null;
    const server = createServer((client) => {
      const upstream = connect({ host: '127.0.0.1', port: target });
      if (opts.proxyV1) upstream.write(`PROXY TCP4 127.0.0.1 127.0.0.1 ${client.remotePort ?? 0} ${target}\r\n`);
      for (const s of [client, upstream]) {
        relay?.sockets.add(s);
        s.on('error', () => undefined);
        s.on('close', () => {
          client.destroy();
          upstream.destroy();
        });
      }
      client.on('data', (d: Buffer) => upstream.write(d));
      upstream.on('data', (d: Buffer) => {
        if (!relay?.muted) client.write(d);
      });
    });
    await new Promise<void>((res) => server.listen(0, '127.0.0.1', res));
    const a = server.address();
    relay = new MuteRelay(server, typeof a === 'object' && a ? a.port : 0);
    return relay;
  }

  get url(): string {
    return `ws://127.0.0.1:${this.port}/`;
  }

  cut(): void {
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
  }

  close(): Promise<void> {
    this.cut();
    return new Promise((res) => this.server.close(() => res()));
  }
}
