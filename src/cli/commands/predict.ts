import type { Command } from 'commander';

export function registerPredict(program: Command): void {
  program.command('predict').description('(not implemented yet)');
}
