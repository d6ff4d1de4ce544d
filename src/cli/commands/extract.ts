import type { Command } from 'commander';

export function registerExtract(program: Command): void {
  program.command('extract').description('(not implemented yet)');
}
