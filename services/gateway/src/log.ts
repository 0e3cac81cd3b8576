// Structured logs, one JSON line per event. Event names echo the seed server's
// console ("[NEW CHAT]", "[NEW MEMBER]", "[ENDING]"). Never a password or
// message text: call sites pass IDs, names and counts only.
import { pino, type Logger as PinoLogger } from 'pino';

export type Logger = PinoLogger;

export function createLogger(level: string, nodeId: string): Logger {
  return pino({ level, base: { node: nodeId }, timestamp: pino.stdTimeFunctions.isoTime });
}

/** The text of a caught error, for a log field (never the stack, never the error's attached command). */
export const errText = (e: unknown): string => (e instanceof Error ? e.message : String(e));
