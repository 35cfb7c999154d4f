// `npm run bench`: every benchmark, each printing its table with ratios against a reference
// measured in the same run. Exits non-zero when a target is missed.
import { exitsBench } from './exits';
import { streamBench } from './stream';

const results = [streamBench(), exitsBench()];
process.exitCode = results.every(Boolean) ? 0 : 1;
