// One Choose and one Reward against a server: `node dist/src/example.js [host:port]`.
import { DecisionClient } from "./index";

async function main(): Promise<void> {
  const target = process.argv[2] ?? process.env.ARBITER_TARGET ?? "127.0.0.1:50051";
  const client = new DecisionClient(target);
  try {
    const decision = await client.choose({
      experiment: "homepage",
      unitId: "user-42",
      context: [{ name: "user", numbers: { age: 31 }, categories: { country: "fr" } }],
      actions: [
        { id: "hero-a", features: [{ name: "item", categories: { color: "red" } }] },
        { id: "hero-b", features: [{ name: "item", categories: { color: "blue" } }] },
      ],
    });
    console.log(`event ${decision.eventId}: show ${decision.actionId} (p=${decision.probability.toFixed(3)})`);
    const { learned } = await client.reward(decision.eventId, 1.0);
    console.log(`reward stored, learned=${learned}`);
  } finally {
    client.close();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
