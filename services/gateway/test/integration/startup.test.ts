// Start-up refusals: the JavaScript fallback of uWebSockets.js, and bad settings.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { test } from 'node:test';
import { MAIN, freePort, tempDir } from '../helpers/gateway.js';
import { within } from '../helpers/wait.js';

async function runGateway(env: Record<string, string>): Promise<{ code: number | null; output: string }> {
  const p = spawn(process.execPath, [MAIN], {
    env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOST: '127.0.0.1', PORT: '0', METRICS_PORT: '0', TCP_PORT: String(await freePort()), DATA_DIR: tempDir(), ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  p.stdout.on('data', (d: Buffer) => (output += d.toString()));
  p.stderr.on('data', (d: Buffer) => (output += d.toString()));
  const code = await within(new Promise<number | null>((res) => p.once('exit', (c) => res(c))), 10_000, 'the gateway to refuse to start');
  return { code, output };
}

test('refuses to run on the uWebSockets.js JavaScript fallback', async () => {
  // The npm build falls back silently to a slow JS shim; this flag forces that path.
  const { code, output } = await runGateway({ UWS_USE_FALLBACK: '1' });
  assert.equal(code, 1);
  assert.match(output, /not running its native build/);
  assert.doesNotMatch(output, /\[LISTENING\]/);
});

test('bad settings stop the gateway with exit code 2 and name the setting', async () => {
  for (const [env, name] of [
    [{ PORT: 'eighty' }, 'PORT'],
    [{ SCRYPT_N: '1000' }, 'SCRYPT_N'],
    [{ REDIS_URL: 'redis://127.0.0.1:1' }, 'CHAT_SECRET'],
    [{ RATE_LIMIT_PER_SEC: '-1' }, 'RATE_LIMIT_PER_SEC'],
    [{ CREATE_BUDGET: 'lots' }, 'CREATE_BUDGET'],
    // Server API keys: each at least 16 characters (a short one among several too).
    [{ API_KEY: 'short' }, 'API_KEY'],
    [{ API_KEY: `${'k'.repeat(16)},tiny` }, 'API_KEY'],
    // A rotation window is a moment, required with the previous secret.
    [{ CHAT_SECRET: 's'.repeat(32), CHAT_SECRET_PREVIOUS: 'p'.repeat(32) }, 'CHAT_SECRET_PREVIOUS_UNTIL'],
    [{ CHAT_SECRET: 's'.repeat(32), CHAT_SECRET_PREVIOUS: 'p'.repeat(32), CHAT_SECRET_PREVIOUS_UNTIL: 'next week' }, 'CHAT_SECRET_PREVIOUS_UNTIL'],
  ] as const) {
    const { code, output } = await runGateway(env);
    assert.equal(code, 2, JSON.stringify(env));
    assert.match(output, new RegExp(name));
    if ('API_KEY' in env) assert.doesNotMatch(output, /short|tiny/, 'the key itself is not printed');
  }
});
