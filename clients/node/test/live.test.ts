// The client against a real server at $ARBITER_TARGET (experiment $ARBITER_EXPERIMENT, default
// "homepage"). tests/clients_live starts one and runs `npm test` with ARBITER_TARGET set; for a
// server with TLS and tokens also ARBITER_TLS_CA (and ARBITER_TLS_CERT, ARBITER_TLS_KEY for
// mTLS) and ARBITER_TOKEN.
import assert from "node:assert/strict";
import { after, describe, test } from "node:test";

import { type Decision, DecisionClient, type DecisionClientOptions, Status, hasStatus } from "../src/index";
import { invalidDecision } from "./check";

const target = process.env.ARBITER_TARGET;
const experiment = process.env.ARBITER_EXPERIMENT || "homepage";
const skip = target ? false : "ARBITER_TARGET is not set: start `arbiter serve` and set ARBITER_TARGET=host:port";
const token = process.env.ARBITER_TOKEN || undefined;
const tls = process.env.ARBITER_TLS_CA
  ? {
      caFile: process.env.ARBITER_TLS_CA,
      certFile: process.env.ARBITER_TLS_CERT || undefined,
      keyFile: process.env.ARBITER_TLS_KEY || undefined,
    }
  : undefined;
const connection: DecisionClientOptions = { token, tls };

describe("live server", { skip }, () => {
  const client = new DecisionClient(target ?? "", { ...connection, timeoutMs: 30_000 });
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

  test("without the token: UNAUTHENTICATED", { skip: token ? false : "no ARBITER_TOKEN" }, async () => {
    const anonymous = new DecisionClient(target ?? "", { tls, timeoutMs: 30_000 });
    try {
      await assert.rejects(anonymous.choose({ experiment, actions: [{ id: "a" }] }), (e) => {
        assert.ok(hasStatus(e, Status.UNAUTHENTICATED), `want UNAUTHENTICATED, got ${e}`);
        return true;
      });
    } finally {
      anonymous.close();
    }
  });

  test("a plaintext client against the TLS server: UNAVAILABLE at once", { skip: tls ? false : "no TLS" }, async () => {
    const plaintext = new DecisionClient(target ?? "", { token, timeoutMs: 20_000 });
    const began = Date.now();
    try {
      await assert.rejects(plaintext.choose({ experiment, actions: [{ id: "a" }] }), (e) => {
        assert.ok(hasStatus(e, Status.UNAVAILABLE), `want UNAVAILABLE, got ${e}`);
        return true;
      });
      assert.ok(Date.now() - began < 10_000, `took ${Date.now() - began} ms`);
    } finally {
      plaintext.close();
    }
  });

  test("chooseBatch decides each choice; a bad one fails alone", async () => {
    const good = { experiment, unitId: "node-batch-user", actions: offered.map((id) => ({ id })) };
    const results = await client.chooseBatch([good, { ...good, actions: [] }, good]);
    assert.equal(results.length, 3);
    const [first, bad, third] = results;
    assert.ok(first.ok && third.ok, `want two decisions, got ${JSON.stringify(results)}`);
    assert.equal(invalidDecision(first.decision, offered), null);
    assert.notEqual(first.decision.eventId, third.decision.eventId);
    assert.ok(!bad.ok && bad.code === Status.INVALID_ARGUMENT && bad.message.includes("`actions`"),
      `want INVALID_ARGUMENT naming actions, got ${JSON.stringify(bad)}`);
    const result = await client.reward(first.decision.eventId, 1.0);
    assert.equal(typeof result.learned, "boolean");
  });

  test("an excluded action is never chosen and has probability 0", async () => {
    const choices = Array.from({ length: 20 }, () => ({
      experiment, actions: offered.map((id) => ({ id })), excludedActionIds: ["hero-b"],
    }));
    for (const r of await client.chooseBatch(choices)) {
      assert.ok(r.ok, `want a decision, got ${JSON.stringify(r)}`);
      assert.notEqual(r.decision.actionId, "hero-b");
      assert.equal(r.decision.ranking.find((x) => x.actionId === "hero-b")?.probability, 0);
    }
  });

  test("choose with explain answers an explanation per action; without it none", async () => {
    const choice = {
      experiment,
      context: [{ name: "user", numbers: { age: 31 } }],
      actions: offered.map((id, i) => ({ id, features: [{ name: "item", numbers: { rank: i } }] })),
    };
    const plain = await client.choose(choice);
    const explained = await client.choose({ ...choice, explain: true });
    assert.deepEqual(plain.explanations, []);
    assert.deepEqual(explained.explanations.map((e) => e.actionId), offered);
    for (const e of explained.explanations) {
      const features = e.contributions.map((c) => c.feature);
      assert.ok(features.includes("intercept"), `want an intercept term, got ${features}`);
      assert.equal(features.at(-1), "exploration", `LinUCB's bonus comes last, got ${features}`);
      assert.ok(Number.isFinite(e.score) && e.contributions.every((c) => Number.isFinite(c.contribution)));
    }
  });

  test("choose without actions gets INVALID_ARGUMENT", async () => {
    await assert.rejects(client.choose({ experiment, unitId: "node-client-user", actions: [] }), (e) => {
      assert.ok(hasStatus(e, Status.INVALID_ARGUMENT), `want INVALID_ARGUMENT, got ${e}`);
      return true;
    });
  });
});
