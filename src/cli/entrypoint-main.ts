/**
 * `model-server-entrypoint`: the container image's entrypoint, also usable on a host. Given a model directory
 * (KServe's /mnt/models) it finds config/config.properties and model-store/, maps KServe's environment onto config
 * keys (entrypoint-plan.ts) and runs the server in the foreground in TorchServe's dialect, in this process, so the
 * container's signals reach the server directly. It accepts the arguments kserve-torchserve's runtime passes
 * (`torchserve --start --model-store=... --ts-config=...`), so that runtime can run this image unchanged.
 * `--healthcheck` asks the planned inference address for /ping instead (the image's HEALTHCHECK).
 */

import { request } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { Command } from 'commander';
import { TOOL_VERSION } from '../util/package-info.js';
import { runStart } from './commands/start.js';
import { discardEarlySpawn } from './early-spawn.js';
import { DEFAULT_MODEL_DIR, type EntrypointFlags, planEntrypoint } from './entrypoint-plan.js';
import { runProgram } from './run.js';

type Flags = EntrypointFlags & { healthcheck?: boolean };

/** How long the health check waits for /ping (Docker's HEALTHCHECK has its own timeout around it). */
const HEALTHCHECK_TIMEOUT_MS = 5_000;

/** GET /ping on the planned inference address (0.0.0.0 and :: are asked on loopback); true when it answers 200. */
function ping(inferenceUrl: string): Promise<{ ok: boolean; text: string }> {
  const url = new URL('/ping', inferenceUrl.replace('://0.0.0.0:', '://127.0.0.1:').replace('://[::]:', '://[::1]:'));
  const send = url.protocol === 'https:' ? httpsRequest : request;
  return new Promise((resolve) => {
    // the server's own certificate may be self-signed: this only asks whether it answers
    const req = send(url, { timeout: HEALTHCHECK_TIMEOUT_MS, rejectUnauthorized: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        resolve({ ok: res.statusCode === 200, text: `${res.statusCode} ${Buffer.concat(chunks).toString('utf8').trim()}` }),
      );
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${HEALTHCHECK_TIMEOUT_MS} ms`)));
    req.on('error', (err) => resolve({ ok: false, text: err.message }));
    req.end();
  });
}

async function run(flags: Flags): Promise<void> {
  const { healthcheck, ...entry } = flags;
  const plan = planEntrypoint(entry);
  if (healthcheck) {
    const r = await ping(plan.inferenceUrl);
    process.stdout.write(`${plan.inferenceUrl}/ping: ${r.text.replace(/\s+/g, ' ')}\n`);
    if (!r.ok) process.exitCode = 1;
    return;
  }
  await runStart(plan.start);
}

export function buildEntrypointProgram(): Command {
  return new Command('model-server-entrypoint')
    .description(
      `the container entrypoint: serve a model directory (${DEFAULT_MODEL_DIR}: model-store/ + config/config.properties) with KServe's environment (PORT, PROTOCOL_VERSION, TS_SERVICE_ENVELOPE, MODEL_NAME); see docs/kubernetes.md`,
    )
    .version(TOOL_VERSION, '-V, --version', 'print the version')
    .argument('[command]', "ignored: kserve-torchserve's runtime passes `torchserve` first")
    .option('--model-dir <dir>', `the model directory (default: $MODEL_DIR, else ${DEFAULT_MODEL_DIR})`)
    .option('--model-store <dir>', 'the model store (default: <model dir>/model-store)')
    .option('--ts-config <file>', 'config.properties (default: <model dir>/config/config.properties)')
    .option('--models <model...>', 'models to load at startup: [name=]url ..., or ALL (default: the config, else every model in the store)')
    .option('--start', 'accepted for kserve-torchserve: the server always runs in the foreground')
    .option('--foreground', 'accepted: the server always runs in the foreground')
    .option('--ncs, --no-config-snapshots', 'do not write config snapshots')
    .option('--dt, --disable-token-auth', 'requests need no token')
    .option('--enable-model-api', 'allow registering and unregistering models')
    .option('--healthcheck', 'ask the inference address for /ping and exit 0 when it answers 200 (the image HEALTHCHECK)')
    .option('--debug', 'print stack traces on errors')
    .action((_command: string | undefined, flags: Flags) => run(flags));
}

export async function main(argv: readonly string[]): Promise<number> {
  try {
    return await runProgram(buildEntrypointProgram(), argv);
  } finally {
    // workers the early entry spawned for a command line the CLI then read otherwise (or refused)
    await discardEarlySpawn();
  }
}
