// The client against a real server at $ARBITER_TARGET (experiment $ARBITER_EXPERIMENT, default
// "homepage"). tests/clients_live starts one and runs `npm test` with ARBITER_TARGET set.
import assert from "node:assert/strict";
import { after, describe, test } from "node:test";

import { type Decision, DecisionClient, Status, hasStatus } from "../src/index";
import { invalidDecision } from "./check";

const target = process.env.ARBITER_TARGET;
const experiment = process.env.ARBITER_EXPERIMENT || "homepage";
const skip = target ? false : "ARBITER_TARGET is not set: start `arbiter serve` and set ARBITER_TARGET=host:port";

describe("live server", { skip }, () => {
  const client = new DecisionClient(target ?? "", { timeoutMs: 30_000 });
  after(() => client.close());
  const offered = ["hero-a", "hero-b", "hero-c"];
  let decision: Decision | undefined;

  test("choose returns a valid decision", async () => {
    decision = await client.choose({
      experiment,
      unitId: "node-client-user",
      context: [{ name: "user", numbers: { age: 31 }, categories: { lang: "ts" } }],
      actions: offered.map((id, i) => ({ id, features: [{ name: "item", numbers: { rank: i } }] })),
    });
    const problem = invalidDecision(decision, offered);
    assert.equal(problem, null, `invalid decision ${JSON.stringify(decision)}: ${problem}`);
  });

  test("reward on that event succeeds", async () => {
    assert.ok(decision, "no decision: choose failed");
    const result = await client.reward(decision.eventId, 1.0);
    assert.equal(typeof result.learned, "boolean");
  });

  // A different value: a repeat of the stored value may count as an idempotent retry.
  test("a second reward gets ALREADY_EXISTS", async () => {
    assert.ok(decision, "no decision: choose failed");
    await assert.rejects(client.reward(decision.eventId, 0.0), (e) => {
      assert.ok(hasStatus(e, Status.ALREADY_EXISTS), `want ALREADY_EXISTS, got ${e}`);
      return true;
    });
  });

  test("choose without actions gets INVALID_ARGUMENT", async () => {
    await assert.rejects(client.choose({ experiment, unitId: "node-client-user", actions: [] }), (e) => {
      assert.ok(hasStatus(e, Status.INVALID_ARGUMENT), `want INVALID_ARGUMENT, got ${e}`);
      return true;
    });
  });
});
