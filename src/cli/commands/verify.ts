import type { Command } from 'commander';

export function registerVerify(program: Command): void {
  program.command('verify').description('(not implemented yet)');
}
