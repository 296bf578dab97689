// Preloaded (node --import) into a test's CLI and daemon: arms the fail point named by
// $ONDEMAND_FAIL_AT (see src/transport/fail-point.ts). The product alone never arms any.
globalThis[Symbol.for('ondemand.test.failPointArmed')] = (name) => name === process.env.ONDEMAND_FAIL_AT;
