// What every bin/ launcher does: the CLI runs from its bundle (scripts/build-bundle.js); with --debug or
// MAR_DEBUG=1 its source map names src/*.ts in stack traces. A CLI that starts workers (`early`) has them spawned
// first, before its own modules and the server's load (cli/early-spawn.ts).
export async function launch(entry, early) {
  const argv = process.argv.slice(2);
  if (argv.includes('--debug') || process.env.MAR_DEBUG === '1') process.setSourceMapsEnabled(true);
  if (early !== undefined) {
    const { earlySpawn } = await import('../dist/bundle/early-spawn.js');
    await earlySpawn(argv, early);
  }
  const { main } = await import(`../dist/bundle/${entry}.js`);
  process.exitCode = await main(argv);
}
