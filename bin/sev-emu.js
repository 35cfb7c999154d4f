#!/usr/bin/env node
'use strict';
require('../dist/lib/cli/sev-emu.js').main(process.argv.slice(2)).then((code) => { process.exitCode = code; });
