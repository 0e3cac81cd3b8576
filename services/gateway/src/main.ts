// Wiring only: config → engine → node → transports → metrics, and shutdown.
import { Api } from './api.js';
import { ConfigError, loadConfig, type Config } from './config.js';
import { lockDataDir } from './datalock.js';
import type { Engine } from './engine/engine.js';
import { MemoryEngine } from './engine/memory.js';
import { TrustedProxies } from './clientip.js';
import { createLogger, type Logger, errText } from './log.js';
import { Metrics, serveMetrics } from './metrics.js';
import { ChatNode } from './node.js';
import { AfterBurst, compactHeap } from './heap.js';
import { ScryptProcess } from './scrypt-process.js';
import { StartupError, listenError } from './startup.js';
import { TcpTransport } from './transport/tcp.js';
import { UwsTransport, assertNativeUws } from './transport/uws.js';

async function createEngine(config: Config, log: Logger, metrics: Metrics): Promise<Engine> {
  if (config.redisUrl || config.redisClusterNodes) {
    const { RedisEngine } = await import('./engine/redis/redis-engine.js');
    return new RedisEngine(config, log, { onReconnect: () => metrics.redisReconnects.inc(), onGroupRemoved: () => metrics.groupsRemoved.inc() });
  }
  return new MemoryEngine({
    dataDir: config.dataDir,
    historyLimit: config.historyLimit,
    dedupeWindow: config.dedupeWindow,
    dedupeTtlMs: config.dedupeTtlSeconds * 1000,
    maxGroups: config.maxGroups,
    retentionSeconds: config.groupRetentionSeconds,
    historyMaxBytes: config.historyMaxBytes,
    onGroupRemoved: () => metrics.groupsRemoved.inc(),
    log,
  });
}

async function main(): Promise<void> {
  let config: Config;
  try {
    config = loadConfig();
    assertNativeUws();
  } catch (e) {
    process.stderr.write(`gateway: ${errText(e)}\n`);
    process.exit(e instanceof ConfigError ? 2 : 1);
  }
  const log = createLogger(config.logLevel, config.nodeId);
  const metrics = new Metrics(config.nodeId);
  if (config.secretIsEphemeral) log.info('CHAT_SECRET unset: resume tokens are valid on this process only');

  try {
    await start(config, log, metrics);
  } catch (e) {
    if (!(e instanceof StartupError)) throw e;
    // Something else holds what this node needs (its port, its DATA_DIR): a conflict, not a crash.
    log.fatal(e.details, e.message);
    log.flush();
    process.exit(2);
  }
}

async function start(config: Config, log: Logger, metrics: Metrics): Promise<void> {
  const embedded = !config.redisUrl && !config.redisClusterNodes;
  // One embedded node per journal (released on exit).
  if (embedded) lockDataDir(config.dataDir);
  const engine = await createEngine(config, log, metrics);
  await engine.start();
  if (engine instanceof MemoryEngine && engine.droppedBytesAtStart > 0)
    log.warn({ droppedBytes: engine.droppedBytesAtStart, dataDir: config.dataDir }, 'journal: dropped a torn tail at start');
  // scrypt's memory leaves with the password process once it is idle (scrypt-process.ts).
  // After a storm's password work, also the heap the storm grew (heap.ts).
  const afterStorm = (): void => {
    const { before, after } = compactHeap();
    if (after < before) log.info({ heapBeforeMb: Math.round(before / 2 ** 20), heapAfterMb: Math.round(after / 2 ** 20) }, 'heap compacted after a burst');
  };
  const passwords =
    config.scryptIdleSeconds > 0 ? new ScryptProcess(config.scryptConcurrency, config.scryptIdleSeconds * 1000, log, afterStorm) : null;
  // …and after a storm of connections, password work or not: 500 or more, then 10 s without one.
  const storm = new AfterBurst(10_000, 500, afterStorm);
  const node = new ChatNode(engine, config, log, metrics, passwords?.run, () => storm.note());
  node.watchEngine();
  metrics.probeEngine(() => engine.isUp());
  metrics.probeReady(() => node.isReady());

  const proxies = new TrustedProxies(config.trustedProxies);
  // The server HTTP API: its routes answer 404 while API_KEY is unset.
  const api = new Api(engine, node.calls, config, log, metrics);
  const ws = new UwsTransport(node, proxies, config, metrics, log, api);
  node.addFanout(ws.fanout);
  const port = await ws.listen();
  let tcp: TcpTransport | null = null;
  let tcpPort = 0;
  if (config.tcpPort !== 0) {
    tcp = new TcpTransport(node, proxies, config, metrics, log);
    node.addFanout(tcp.fanout);
    tcpPort = await tcp.listen();
  }
  const metricsServer = await serveMetrics(metrics, config.host, config.metricsPort).catch((e: unknown) => {
    throw listenError('METRICS_PORT', config.host, config.metricsPort, e);
  });
  log.info({ port, tcpPort, metricsPort: metricsServer.port, engine: engine.kind, dataDir: engine.kind === 'memory' ? config.dataDir : undefined }, '[LISTENING]');

  let stopping = false;
  const shutdown = (signal: string): void => {
    if (stopping) {
      log.warn({ signal }, 'second signal: exiting now');
      process.exit(0);
    }
    stopping = true;
    log.info({ signal, drainSeconds: config.drainSeconds }, '[SHUTDOWN]');
    tcp?.stopAccepting();
    const deadline = setTimeout(() => {
      log.warn('drain deadline passed: exiting now');
      process.exit(0);
    }, (config.drainSeconds + 5) * 1000);
    deadline.unref();
    void (async () => {
      await node.drain(config.drainSeconds);
      await engine.stop();
      passwords?.close();
      ws.close();
      metricsServer.close();
      log.info('[STOPPED]');
      log.flush();
      process.exit(0);
    })();
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
  process.on('unhandledRejection', (e) => log.error({ err: e }, 'unhandled rejection'));
}

main().catch((e: unknown) => {
  process.stderr.write(`gateway: failed to start: ${errText(e)}\n`);
  process.exit(1);
});
