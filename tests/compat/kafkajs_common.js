// What the kafkajs checks share: the client (installed by
// scripts/ci-setup.sh under target/js), a client for the bootstrap, and
// assertions that exit non-zero with "<tag> FAILED: ..." on a mismatch.
'use strict';
const path = require('path');
const kafkajs = require(path.join(__dirname, '..', '..', 'target', 'js', 'node_modules', 'kafkajs'));

// A kafkajs client; KAFKAJS_DEBUG=1 in the environment logs at DEBUG.
function client(clientId, bootstrap) {
  return new kafkajs.Kafka({
    clientId,
    brokers: bootstrap.split(','),
    logLevel: process.env.KAFKAJS_DEBUG ? kafkajs.logLevel.DEBUG : kafkajs.logLevel.ERROR,
    retry: { retries: 8 },
  });
}

// fail, assertEq (JSON equality) and check (a condition) for `tag`.
function assertions(tag) {
  const fail = (msg) => {
    console.error(`${tag} FAILED: ${msg}`);
    process.exit(1);
  };
  const assertEq = (got, want, what) => {
    const g = JSON.stringify(got);
    const w = JSON.stringify(want);
    if (g !== w) fail(`${what}: got ${g}, want ${w}`);
  };
  const check = (cond, what) => {
    if (!cond) fail(what);
  };
  return { fail, assertEq, check };
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

module.exports = { kafkajs, client, assertions, sleep };
