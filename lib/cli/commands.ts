// The registry of `sev` subcommands.
import type { Command } from './sev';
import { exportCommand } from './export';
import { okCommand } from './ok';
import { showCommand } from './show';

export const commands: Command[] = [exportCommand, okCommand, showCommand];
