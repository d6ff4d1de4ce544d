/**
 * The soak: N keep-alive connections posting to one model as fast as it answers, one of its workers SIGKILLed on
 * a schedule, every answer classified, the frontend's RSS sampled. `npm run bench:soak` runs the long rows
 * (bench/soak.bench.ts); test/server/soak.test.ts runs a 10-second one.
 */
import { readFileSync } from 'node:fs';
import { Agent, request } from 'node:http';

export interface SoakPlan {
  /** The model's prediction URL and describe URL. */
  predictUrl: string;
  describeUrl: string;
  /** The frontend process (its RSS is sampled). */
  serverPid: number;
  connections: number;
  seconds: number;
  /** RSS is read once this long after the start (the "after warm-up" figure). */
  warmupSeconds: number;
  /** One worker is SIGKILLed this often (0: never). */
  killEverySeconds: number;
  /** RSS samples for the trend, this often. */
  sampleEverySeconds: number;
  /** A request without an answer after this long is hung. */
  hangSeconds?: number;
}

export interface SoakResult {
  sent: number;
  ok: number;
  /** 5xx answers by "status message". */
  errors5xx: Map<string, number>;
  /** Other non-200 answers by "status message". */
  otherAnswers: Map<string, number>;
  /** Answers that were not a 200 "OK" nor an MMS error body ({code, type, message} with code = status). */
  malformed: number;
  hung: number;
  /** Connection-level failures (reset, refused, closed without an answer) by error code. */
  connectionErrors: Map<string, number>;
  kills: number;
  /** Worker ids seen over the run beyond the first set: each is a replacement. */
  workersReplaced: number;
  rssWarmMiB: number;
  rssEndMiB: number;
  /** [seconds since start, MiB] */
  rssSamples: Array<[number, number]>;
}

/** Resident set size of a process in MiB (0 when it is gone). */
export function rssMiB(pid: number): number {
  try {
    const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : 0;
  } catch {
    return 0;
  }
}

interface Answer {
  status: number;
  body: string;
}

function post(url: URL, agent: Agent, hangMs: number): Promise<Answer | { error: string }> {
  return new Promise((resolve) => {
    let settled = false;
    const done = (v: Answer | { error: string }): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(v);
    };
    const req = request(
      { host: url.hostname, port: url.port, path: url.pathname, method: 'POST', agent, headers: { 'content-type': 'text/plain' } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => done({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', (err: NodeJS.ErrnoException) => done({ error: err.code ?? err.message }));
      },
    );
    const timer = setTimeout(() => {
      done({ error: 'HUNG' });
      req.destroy();
    }, hangMs);
    req.on('error', (err: NodeJS.ErrnoException) => done({ error: err.code ?? err.message }));
    req.end('x');
  });
}

/** An MMS error body ({code, type, message}, code = the status), or null when the answer is not one. */
function errorBody(a: Answer): { code: number; type: string; message: string } | null {
  let v: unknown;
  try {
    v = JSON.parse(a.body);
  } catch {
    return null;
  }
  const o = v as { code?: unknown; type?: unknown; message?: unknown } | null;
  if (!o || o.code !== a.status || typeof o.type !== 'string' || typeof o.message !== 'string') return null;
  return { code: a.status, type: o.type, message: o.message };
}

function bump(map: Map<string, number>, key: string): void {
  map.set(key, (map.get(key) ?? 0) + 1);
}

interface WorkerView {
  id: string;
  pid?: number;
  status: string;
}

async function describeWorkers(url: string): Promise<WorkerView[]> {
  try {
    const res = await fetch(url);
    return ((await res.json()) as { workers: WorkerView[] }).workers;
  } catch {
    return [];
  }
}

/** Runs the plan and resolves with what every request got. */
export async function runSoak(plan: SoakPlan): Promise<SoakResult> {
  const url = new URL(plan.predictUrl);
  const hangMs = (plan.hangSeconds ?? 30) * 1000;
  const result: SoakResult = {
    sent: 0,
    ok: 0,
    errors5xx: new Map(),
    otherAnswers: new Map(),
    malformed: 0,
    hung: 0,
    connectionErrors: new Map(),
    kills: 0,
    workersReplaced: 0,
    rssWarmMiB: 0,
    rssEndMiB: 0,
    rssSamples: [],
  };
  const t0 = performance.now();
  const elapsed = (): number => (performance.now() - t0) / 1000;
  const seen = new Set((await describeWorkers(plan.describeUrl)).map((w) => w.id));
  const initial = seen.size;
  let stop = false;

  const classify = (a: Answer | { error: string }): void => {
    if ('error' in a) {
      if (a.error === 'HUNG') result.hung++;
      else bump(result.connectionErrors, a.error);
      return;
    }
    if (a.status === 200 && a.body === 'OK') {
      result.ok++;
      return;
    }
    const parsed = errorBody(a);
    if (parsed === null) {
      result.malformed++;
      return;
    }
    bump(a.status >= 500 ? result.errors5xx : result.otherAnswers, `${a.status} ${parsed.message}`);
  };

  const client = async (): Promise<void> => {
    // one connection per client: a closed one (after an error answer) is replaced by the agent
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    try {
      while (!stop) {
        result.sent++;
        classify(await post(url, agent, hangMs));
      }
    } finally {
      agent.destroy();
    }
  };

  const timers: NodeJS.Timeout[] = [];
  const poll = setInterval(() => {
    void describeWorkers(plan.describeUrl).then((ws) => {
      for (const w of ws) seen.add(w.id);
    });
  }, 1000);
  timers.push(poll);
  timers.push(setTimeout(() => (result.rssWarmMiB = rssMiB(plan.serverPid)), plan.warmupSeconds * 1000));
  timers.push(setInterval(() => result.rssSamples.push([Math.round(elapsed()), rssMiB(plan.serverPid)]), plan.sampleEverySeconds * 1000));
  if (plan.killEverySeconds > 0) {
    timers.push(
      setInterval(() => {
        void describeWorkers(plan.describeUrl).then((ws) => {
          // a loaded worker, busy or not (describe shows both as READY)
          const victim = ws.find((w) => w.status === 'READY' && w.pid);
          if (!victim || stop) return;
          try {
            process.kill(victim.pid!, 'SIGKILL');
            result.kills++;
          } catch {
            // it died on its own meanwhile
          }
        });
      }, plan.killEverySeconds * 1000),
    );
  }
  const clients = Array.from({ length: plan.connections }, client);
  await new Promise((resolve) => setTimeout(resolve, plan.seconds * 1000));
  stop = true;
  await Promise.all(clients);
  for (const t of timers) clearInterval(t);
  for (const w of await describeWorkers(plan.describeUrl)) seen.add(w.id);
  result.workersReplaced = seen.size - initial;
  result.rssEndMiB = rssMiB(plan.serverPid);
  if (result.rssWarmMiB === 0) result.rssWarmMiB = result.rssSamples[0]?.[1] ?? result.rssEndMiB;
  return result;
}

/** The targets for one row; each is [what, met]. `batchSize` bounds the "Worker died." answers per kill. */
export function soakTargets(r: SoakResult, batchSize: number): Array<[string, boolean]> {
  const died = [...r.errors5xx].filter(([k]) => /^50[07] Worker died\.$/.test(k)).reduce((n, [, v]) => n + v, 0);
  const other5xx = [...r.errors5xx].filter(([k]) => !/^50[07] Worker died\.$/.test(k)).reduce((n, [, v]) => n + v, 0);
  const growth = r.rssWarmMiB > 0 ? (r.rssEndMiB - r.rssWarmMiB) / r.rssWarmMiB : 0;
  return [
    ['0 hung', r.hung === 0],
    ['0 connection errors', [...r.connectionErrors.values()].reduce((a, b) => a + b, 0) === 0],
    ['every answer well-formed', r.malformed === 0],
    ['5xx only "Worker died."', other5xx === 0 && [...r.otherAnswers.values()].reduce((a, b) => a + b, 0) === 0],
    [`"Worker died." <= kills x batch (${died} <= ${r.kills} x ${batchSize})`, died <= r.kills * batchSize],
    [`RSS growth < 10 % (${(growth * 100).toFixed(1)} %)`, growth < 0.1],
  ];
}
