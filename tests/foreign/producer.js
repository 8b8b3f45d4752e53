#!/usr/bin/env node
// A Node.js backend enqueuing one submission through celery-node, as docs/contract.md tells
// integrators to. Usage:
//   BROKER_URL=redis://... BACKEND_URL=redis://... QUEUE=runner node producer.js SUB.json [TIMEOUT_S]
// Prints the submission result (JSON) on stdout and exits 0; exits 1 with a message on stderr
// when the result is a Celery failure or does not come in time.
"use strict";

const fs = require("fs");
const celery = require("celery-node");

const RESULT_POLL_MS = 200;

function fail(message) {
  process.stderr.write(`producer.js: ${message}\n`);
  process.exit(1);
}

// celery-node resolves get() on the first final state it reads. runner.submit replaces itself
// (Task.replace raises Ignore, so it writes no state of its own) and the final join task
// reuses its id: the first final state under that id is the submission result. The contract
// field tells it apart from anything else that could ever land there.
async function waitForResult(result, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  for (let left = timeoutMs; left > 0; left = deadline - Date.now()) {
    let value;
    try {
      value = await result.get(left, RESULT_POLL_MS);
    } catch (err) {
      // get() rejects with an Error named after the state: FAILURE, REVOKED or TIMEOUT
      if (err.message === "TIMEOUT") break;
      throw err;
    }
    if (value && typeof value === "object" && "contract" in value) return value;
    // a final state without a submission result: drop celery-node's cache and look again
    result._cache = null;
    await new Promise((resolve) => setTimeout(resolve, RESULT_POLL_MS));
  }
  throw new Error(`no result for task ${result.taskId} after ${timeoutMs / 1000} s`);
}

async function main() {
  const [path, timeoutArg] = process.argv.slice(2);
  if (!path) fail("usage: producer.js SUBMISSION.json [TIMEOUT_S]");
  const { BROKER_URL, BACKEND_URL } = process.env;
  if (!BROKER_URL || !BACKEND_URL) fail("BROKER_URL and BACKEND_URL must be set");
  const queue = process.env.QUEUE || "runner";
  const timeoutMs = 1000 * Number(timeoutArg || 120);
  const submission = JSON.parse(fs.readFileSync(path, "utf8"));

  // celery-node routes every task of a client to the queue given here (its default is
  // "celery", which no runner worker consumes); applyAsync has no per-call queue option.
  const client = celery.createClient(BROKER_URL, BACKEND_URL, queue);
  // wait for both connections: sendTask publishes in the background and would otherwise
  // lose a connection error in an unhandled rejection
  await client.isReady();
  // exactly one positional argument, no keyword arguments: the contract of runner.submit
  const result = client.createTask("runner.submit").applyAsync([submission]);
  process.stderr.write(`producer.js: sent runner.submit ${result.taskId} to ${queue}\n`);
  try {
    const value = await waitForResult(result, timeoutMs);
    process.stdout.write(`${JSON.stringify(value)}\n`);
  } finally {
    await client.disconnect();
  }
}

main().then(
  () => process.exit(0),
  (err) => fail(`${err.message}${err.exc_message ? `: ${JSON.stringify(err.exc_message)}` : ""}`),
);
