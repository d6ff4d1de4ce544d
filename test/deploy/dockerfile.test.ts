/**
 * The Dockerfile, checked without a Docker engine (none runs on this machine; test/deploy/image.slow.test.ts builds it
 * where one does): the build context holds every path it copies and the build needs, the packed tarball is what the
 * image installs, and the image runs the entrypoint as uid 1000 with the ports, health check and init it says.
 */

import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { test } from 'node:test';
import { type Copy, DockerfileParser, type Instruction } from 'dockerfile-ast';
import { parseAllDocuments } from 'yaml';
import { buildEntrypointProgram } from '../../src/cli/entrypoint-main.js';
import { packagePath } from '../../src/util/package-info.js';
import { run } from '../helpers/util.js';

const NPM = process.platform === 'win32' ? 'npm.cmd' : 'npm';
const dockerfile = DockerfileParser.parse(readFileSync(packagePath('Dockerfile'), 'utf8'));
const instructions = dockerfile.getInstructions();
const pkg = JSON.parse(readFileSync(packagePath('package.json'), 'utf8')) as {
  name: string;
  version: string;
  files: string[];
  bin: Record<string, string>;
  scripts: Record<string, string>;
};
const ignored = readFileSync(packagePath('.dockerignore'), 'utf8')
  .split('\n')
  .map((l) => l.trim())
  .filter((l) => l !== '' && !l.startsWith('#'));

/** The instructions of each stage, in order (a stage starts at its FROM). */
const stages: Instruction[][] = [];
for (const i of instructions) {
  if (i.getKeyword() === 'FROM') stages.push([]);
  stages.at(-1)?.push(i);
}
const [packStage, imageStage] = stages as [Instruction[], Instruction[]];
const args = (i: Instruction): string[] => i.getArguments().map((a) => a.getValue());
const only = (stage: Instruction[], keyword: string): Instruction[] => stage.filter((i) => i.getKeyword() === keyword);
/** The stage a COPY --from takes its files from, or null for the build context. */
const copyFrom = (i: Instruction): string | null => (i as Copy).getFromFlag()?.getValue() ?? null;
/** COPY without --from: what it takes from the build context (the last argument is the destination). */
const contextCopies = (stage: Instruction[]): string[] =>
  only(stage, 'COPY')
    .filter((i) => copyFrom(i) === null)
    .flatMap((i) => args(i).slice(0, -1));

/** A .dockerignore pattern (a name or a `*.ext` glob, all this file uses) matching a path's first segment. */
function isIgnored(path: string): boolean {
  const first = path.split('/')[0]!;
  return ignored.some((p) => (p.startsWith('*') ? first.endsWith(p.slice(1)) : first === p));
}

test('two stages on a Node 20 slim base: pack (build and npm pack), then the image', () => {
  assert.equal(stages.length, 2);
  const base = dockerfile
    .getInitialARGs()
    .map((a) => a.getProperty())
    .find((p) => p?.getName() === 'NODE_IMAGE')
    ?.getValue();
  assert.match(base ?? '', /^node:20(\.\d+)*-[a-z]+-slim$/);
  // both stages FROM the one ARG (a Dockerfile reference, not a template string)
  const fromArg = '$' + '{NODE_IMAGE}';
  assert.deepEqual(
    dockerfile.getFROMs().map((f) => [f.getImage(), f.getBuildStage()]),
    [
      [fromArg, 'pack'],
      [fromArg, null],
    ],
  );
});

test('every path the Dockerfile copies from the build context exists and is not excluded by .dockerignore', () => {
  const sources = contextCopies(packStage);
  assert.ok(sources.length > 0);
  for (const s of sources) {
    assert.ok(existsSync(packagePath(s)), `${s} exists in the checkout`);
    assert.ok(!isIgnored(s), `${s} is not excluded by .dockerignore`);
  }
  assert.deepEqual(contextCopies(imageStage), [], 'the image takes nothing from the checkout but the packed tarball');
  for (const heavy of ['node_modules', 'dist', '.git']) assert.ok(isIgnored(heavy), `.dockerignore excludes ${heavy}`);
});

test('the pack stage copies all that `npm run build` and `npm pack` read', () => {
  const copied = contextCopies(packStage);
  const covered = (path: string): boolean => copied.some((c) => path === c || path.startsWith(`${c}/`));
  const tsconfig = JSON.parse(readFileSync(packagePath('tsconfig.json'), 'utf8')) as { include: string[] };
  const needed = [
    'package.json',
    'package-lock.json',
    // the files the build script names (tsc's configs, the validator's script) and the folders tsc compiles
    ...(pkg.scripts['build']!.match(/[\w./-]+\.(?:json|js)\b/g) ?? []),
    ...tsconfig.include.map((g) => g.split('/')[0]!),
    // what the tarball holds (dist/ is built in the stage)
    ...pkg.files.filter((f) => !f.startsWith('!') && !f.startsWith('dist/')).map((f) => f.split('/')[0]!),
    'README.md',
    'LICENSE',
    'CHANGELOG.md',
  ];
  assert.deepEqual(
    needed.filter((p) => !covered(p)),
    [],
  );
});

test('the image installs exactly the tarball `npm pack` makes of this checkout', async () => {
  const runs = only(packStage, 'RUN').map((i) => i.getArgumentsContent() ?? '');
  const packed = /npm pack --ignore-scripts && mv (\S+) (\S+)/.exec(runs.join('\n'));
  assert.ok(packed, 'the pack stage runs npm pack and names its tarball');
  const [, glob, target] = packed;
  const r = await run(NPM, ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: packagePath() });
  assert.equal(r.code, 0, r.stderr);
  const [info] = JSON.parse(r.stdout) as Array<{ filename: string; files: Array<{ path: string }> }>;
  assert.ok(new RegExp(`^${glob!.replace('.', '\\.').replace('*', '[^/]+')}$`).test(info!.filename), `${info!.filename} matches ${glob}`);
  // the image's stage copies that file and installs it
  const fromPack = only(imageStage, 'COPY').filter((i) => copyFrom(i) === 'pack');
  assert.deepEqual(fromPack.map(args), [[target, target]]);
  assert.ok(
    only(imageStage, 'RUN').some((i) =>
      (i.getArgumentsContent() ?? '').includes(`npm install --global --omit=dev --no-audit --no-fund ${target}`),
    ),
  );
  // the entrypoint the image runs is in it, as a bin npm links
  const entry = pkg.bin['model-server-entrypoint'];
  assert.ok(entry && info!.files.some((f) => f.path === entry), `${entry} is in the tarball`);
});

test('the image: Python 3 and tini from Debian, uid 1000, the five ports, a health check on /ping, the entrypoint under tini', () => {
  const apt = only(imageStage, 'RUN')
    .map((i) => i.getArgumentsContent() ?? '')
    .find((c) => c.includes('apt-get install'));
  for (const p of ['python3', 'python3-pip', 'tini']) assert.match(apt ?? '', new RegExp(`\\s${p}(\\s|$)`));
  // numeric, so Kubernetes' runAsNonRoot can check it; nothing runs as root after it
  const userAt = imageStage.findIndex((i) => i.getKeyword() === 'USER');
  assert.deepEqual(args(imageStage[userAt]!), ['1000:1000']);
  assert.deepEqual(imageStage.slice(userAt).filter((i) => ['RUN', 'USER'].includes(i.getKeyword())).length, 1);
  assert.deepEqual(args(only(imageStage, 'WORKDIR').at(-1)!), ['/home/model-server']);
  assert.deepEqual(only(imageStage, 'EXPOSE').flatMap(args).map(Number), [8080, 8081, 8082, 7070, 7071]);

  const health = only(imageStage, 'HEALTHCHECK')[0]!;
  const healthCmd = JSON.parse((health.getRawArgumentsContent() ?? '').replace(/^.*?\bCMD\s+/s, '')) as string[];
  assert.deepEqual(healthCmd, ['model-server-entrypoint', '--healthcheck']);
  assert.ok(
    buildEntrypointProgram().options.some((o) => o.long === '--healthcheck'),
    'the entrypoint has --healthcheck (GET /ping)',
  );

  const entrypoint = JSON.parse(only(imageStage, 'ENTRYPOINT')[0]!.getRawArgumentsContent() ?? '') as string[];
  assert.deepEqual(entrypoint, ['/usr/bin/tini', '--', 'model-server-entrypoint']);
  assert.ok(pkg.bin['model-server-entrypoint'], 'npm links model-server-entrypoint on PATH');
});

test("the Deployment's container ports are ports the image exposes", () => {
  const exposed = new Set(only(imageStage, 'EXPOSE').flatMap(args).map(Number));
  const deployment = parseAllDocuments(readFileSync(packagePath('deploy', 'kubernetes', 'deployment.yaml'), 'utf8'))[0]!.toJS() as {
    spec: { template: { spec: { containers: Array<{ ports: Array<{ containerPort: number }> }> } } };
  };
  for (const p of deployment.spec.template.spec.containers[0]!.ports) assert.ok(exposed.has(p.containerPort), `${p.containerPort}`);
});
