// The registry of `sev` subcommands.
import type { Command } from './sev';
import { exportCommand } from './export';
import { measurementCommand } from './measurement';
import { okCommand } from './ok';
import { secretCommand } from './secret';
import { showCommand } from './show';
import { vmsaCommand } from './vmsa';

export const commands: Command[] = [exportCommand, okCommand, showCommand, measurementCommand, secretCommand, vmsaCommand];
