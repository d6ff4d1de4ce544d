/** What the benchmarks generate their models from: large files written in 8 MiB steps, and many small text files. */
import { mkdir, open, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/** Writes `total` bytes to path, 8 MiB at a time, each piece from `chunk(n)`. */
export async function writeStream(path: string, total: number, chunk: (n: number) => Buffer): Promise<void> {
  const fh = await open(path, 'w');
  try {
    for (let done = 0; done < total; ) {
      const n = Math.min(8 << 20, total - done);
      await fh.write(chunk(n));
      done += n;
    }
  } finally {
    await fh.close();
  }
}

/** `count` small text files (a few hundred bytes to 2 KiB, deflating well) in 40 directories below dir/text. */
export async function writeTextFiles(dir: string, count = 2000): Promise<void> {
  const words = ['tensor', 'layer', 'weight', 'bias', 'token', 'vocab', 'embedding', 'attention', 'head', 'model'];
  for (let i = 0; i < count; i++) {
    const sub = join(dir, 'text', `d${i % 40}`);
    await mkdir(sub, { recursive: true });
    const lines: string[] = [];
    for (let l = 0; l < 20 + (i % 60); l++)
      lines.push(`${words[(i + l) % 10]} ${words[(i * l) % 10]} ${i * 31 + l} ${(l * 0.37).toFixed(3)}`);
    await writeFile(join(sub, `f${i}.txt`), `${lines.join('\n')}\n`);
  }
}
