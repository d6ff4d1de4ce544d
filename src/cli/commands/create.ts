import type { Command } from 'commander';

export function registerCreate(program: Command): void {
  program.command('create').description('(not implemented yet)');
}
