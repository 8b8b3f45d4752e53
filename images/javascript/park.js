// The launcher of a parked Node.js (images/supervisor/park.c): node starts as the job would be
// exec'ed (`node main.js`, in the job's cell, as its uid, with its limits, cwd, environment and
// descriptors 0-2) plus `--require /opt/runner/park.js`, which runs this file as a preload,
// after node's own start and before it loads the entry point. Here it waits for its job: it
// says "r" on its control socket (the highest descriptor it holds) and blocks until the
// supervisor says "g" (the job's files and stdin are in place and its window is open). Then it
// closes the socket and takes back what of it a program could see: the preload in
// process.execArgv (a child forked with process.execArgv would park again), in
// process._preload_modules, require.cache and the module resolution cache. Node then goes on
// as it would have: Module.runMain(process.argv[1]) from node:internal/main/run_main_module,
// so require.main, process.argv, the main module's paths and every stack trace are those of
// `node main.js`, and no frame of this file is in any. tests/sandbox/test_park.py compares.
'use strict';
const fs = require('fs');

// worker threads run the preloads too: only the main thread (its tid is the pid) has a job to
// wait for
const [pid, , tid] = fs.readlinkSync('/proc/thread-self').split('/');
if (pid === tid) {
  const ctl = Math.max(...fs.readdirSync('/proc/self/fd').map(Number));
  fs.writeSync(ctl, 'r');
  const word = Buffer.alloc(1);
  let got;
  do {
    try {
      got = fs.readSync(ctl, word, 0, 1, null);
    } catch (error) {
      if (error.code !== 'EINTR' && error.code !== 'EAGAIN') throw error;
      got = -1;
    }
  } while (got < 0);
  fs.closeSync(ctl);
  if (got !== 1 || word[0] !== 0x67) process.exit(125); // no job: the supervisor let go
}

// what Node noted of this preload, as `node main.js` has it: no preload
const at = process.execArgv.indexOf(__filename);
if (at > 0 && process.execArgv[at - 1] === '--require') process.execArgv.splice(at - 1, 2);
Object.defineProperty(process, '_preload_modules', {
  value: [], writable: false, enumerable: true, configurable: true,
});
delete require.cache[__filename];
const pathCache = require('module')._pathCache;
for (const key of Object.keys(pathCache)) if (pathCache[key] === __filename) delete pathCache[key];
