// A start that cannot go on because something else holds what this node needs (its port, its
// DATA_DIR): main logs the message and exits 2, like a bad setting, so that a supervisor or an
// operator sees a conflict rather than a crash.
export class StartupError extends Error {
  constructor(
    message: string,
    /** Structured fields for the log line (setting, port, dataDir, pid…). */
    readonly details: Record<string, unknown> = {},
  ) {
    super(message);
  }
}

/** A listener that could not bind: `setting` names the variable (PORT, TCP_PORT, METRICS_PORT). */
export function listenError(setting: string, host: string, port: number, cause: unknown): StartupError {
  const code = (cause as NodeJS.ErrnoException | null)?.code;
  const why =
    code === 'EADDRINUSE'
      ? 'the port is already in use (another gateway on this port?)'
      : code === 'EACCES'
        ? 'permission denied'
        : code
          ? `${code}`
          : 'the port is in use or not available (another gateway on this port?)';
  return new StartupError(`cannot listen on ${host}:${port} (${setting}): ${why}`, { setting, host, port, code: code ?? null });
}
