// The registry of `sev` subcommands.
import type { Command } from './sev';
import { exportCommand } from './export';
import { measurementCommand } from './measurement';
import { okCommand } from './ok';
import { generateCommand, provisionCommand, resetCommand, rotateCommand, verifyCommand } from './ownership';
import { secretCommand } from './secret';
import { sessionCommand } from './session';
import { showCommand } from './show';
import { snpCommand } from './snp';
import { vmsaCommand } from './vmsa';

export const commands: Command[] = [
  exportCommand,
  generateCommand,
  measurementCommand,
  okCommand,
  provisionCommand,
  resetCommand,
  rotateCommand,
  secretCommand,
  sessionCommand,
  showCommand,
  snpCommand,
  verifyCommand,
  vmsaCommand,
];
