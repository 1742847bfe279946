// The wrapper against an in-process fake server: conversion both ways and status codes.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import { Server, ServerCredentials, status, type ServiceError } from "@grpc/grpc-js";

import { DecisionClient, Status, hasStatus } from "../src/index";
import { type ChooseRequest, type RewardRequest, type DecisionServiceServer, DecisionServiceService } from "../src/gen/protos/arbiter/v1/decision";

let server: Server;
let client: DecisionClient;
let lastChoose: ChooseRequest | undefined;
let lastReward: RewardRequest | undefined;
let lastAuthorization: string | undefined;
let target = "";
const rewarded = new Set<string>();

function fail(code: status, details: string): ServiceError {
  return Object.assign(new Error(details), { code, details, metadata: undefined as never });
}

before(async () => {
  server = new Server();
  const impl: DecisionServiceServer = {
    choose: (call, cb) => {
      lastChoose = call.request;
      lastAuthorization = call.metadata.get("authorization")[0] as string | undefined;
      const first = call.request.actions[0];
      if (!first) return cb(fail(status.INVALID_ARGUMENT, "`actions` must not be empty"));
      cb(null, {
        eventId: "ev-1", actionId: first.id, probability: 1,
        ranking: [{ actionId: first.id, probability: 1 }], variant: "main", modelVersion: "0",
        explanations: call.request.explain
          ? [{ actionId: first.id, score: 0.75, contributions: [{ feature: "user.age", contribution: 0.5 },
              { feature: "exploration", contribution: 0.25 }] }]
          : [],
      });
    },
    reward: (call, cb) => {
      lastReward = call.request;
      if (rewarded.has(call.request.eventId)) return cb(fail(status.ALREADY_EXISTS, "already rewarded"));
      rewarded.add(call.request.eventId);
      cb(null, { learned: true });
    },
    activate: (_call, cb) => cb(null, {}),
    chooseBatch: (call, cb) => {
      cb(null, {
        results: call.request.requests.map((r) => {
          const first = r.actions[0];
          return first
            ? { code: 0, message: "", response: { eventId: `ev-${r.unitId}`, actionId: first.id, probability: 1,
                ranking: [{ actionId: first.id, probability: 1 }], variant: "main", modelVersion: "0", explanations: [] } }
            : { code: status.INVALID_ARGUMENT, message: "`actions` must not be empty", response: undefined };
        }),
      });
    },
  };
  server.addService(DecisionServiceService, impl);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync("127.0.0.1:0", ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  target = `127.0.0.1:${port}`;
  client = new DecisionClient(target);
});

test("a token goes with every call as authorization: Bearer metadata, and only then", async () => {
  const withToken = new DecisionClient(target, { token: "s3cret" });
  try {
    await withToken.choose({ experiment: "homepage", actions: [{ id: "a" }] });
    assert.equal(lastAuthorization, "Bearer s3cret");
    await client.choose({ experiment: "homepage", actions: [{ id: "a" }] });
    assert.equal(lastAuthorization, undefined);
  } finally {
    withToken.close();
  }
  assert.throws(() => new DecisionClient(target, { token: " padded " }), TypeError);
});

after(() => {
  client.close();
  server.forceShutdown();
});

test("choose sends the choice and converts the decision", async () => {
  const decision = await client.choose({
    experiment: "homepage", unitId: "u1", deferred: true,
    context: [{ name: "user", numbers: { age: 3 } }],
    actions: [{ id: "a", features: [{ name: "item", categories: { c: "red" } }] }],
  });

  assert.equal(lastChoose?.experiment, "homepage");
  assert.equal(lastChoose?.unitId, "u1");
  assert.equal(lastChoose?.deferred, true);
  assert.equal(lastChoose?.context[0].numbers.age, 3);
  assert.equal(lastChoose?.actions[0].features[0].categories.c, "red");
  assert.equal(lastChoose?.explain, false);
  assert.deepEqual(decision, {
    eventId: "ev-1", actionId: "a", probability: 1,
    ranking: [{ actionId: "a", probability: 1 }], variant: "main", modelVersion: "0", explanations: [],
  });
});

test("choose with explain asks for explanations and converts them", async () => {
  const decision = await client.choose({ experiment: "homepage", actions: [{ id: "a" }], explain: true });

  assert.equal(lastChoose?.explain, true);
  assert.deepEqual(decision.explanations, [{ actionId: "a", score: 0.75, contributions: [
    { feature: "user.age", contribution: 0.5 }, { feature: "exploration", contribution: 0.25 }] }]);
});

test("errors reject with their gRPC status code", async () => {
  await assert.rejects(client.choose({ experiment: "homepage", actions: [] }), (e) =>
    hasStatus(e, Status.INVALID_ARGUMENT),
  );
  assert.deepEqual(await client.reward("ev-2", 1), { learned: true });
  await assert.rejects(client.reward("ev-2", 1), (e) => hasStatus(e, Status.ALREADY_EXISTS));
});

test("reward sends the idempotency key", async () => {
  const result = await client.reward("ev-9", 0.5, { rewardId: "click-1" });

  assert.deepEqual(result, { learned: true });
  assert.deepEqual(lastReward, { eventId: "ev-9", value: 0.5, rewardId: "click-1" });
});

test("reward without an event id fails before calling the server", async () => {
  await assert.rejects(client.reward("", 1), TypeError);
});

test("chooseBatch sends every choice and answers each in order, a refused one as its status", async () => {
  const results = await client.chooseBatch([
    { experiment: "homepage", unitId: "u1", actions: [{ id: "a" }], excludedActionIds: ["b"] },
    { experiment: "homepage", unitId: "u2", actions: [] },
  ]);
  assert.deepEqual(results, [
    { ok: true, decision: { eventId: "ev-u1", actionId: "a", probability: 1,
      ranking: [{ actionId: "a", probability: 1 }], variant: "main", modelVersion: "0", explanations: [] } },
    { ok: false, code: Status.INVALID_ARGUMENT, message: "`actions` must not be empty" },
  ]);
});
