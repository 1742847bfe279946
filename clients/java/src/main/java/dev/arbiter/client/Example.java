package dev.arbiter.client;

import dev.arbiter.v1.ChooseRequest;
import java.util.Map;

/** One Choose and one Reward: {@code java -cp ... dev.arbiter.client.Example [host:port]}. */
public final class Example {
  private Example() {}

  public static void main(String[] args) {
    String target =
        args.length > 0 ? args[0] : System.getenv().getOrDefault("ARBITER_TARGET", "127.0.0.1:50051");
    try (DecisionClient client = DecisionClient.connect(target)) {
      DecisionClient.Decision decision =
          client.choose(
              ChooseRequest.newBuilder()
                  .setExperiment("homepage")
                  .setUnitId("user-42")
                  .addContext(
                      DecisionClient.features("user", Map.of("age", 31.0), Map.of("country", "fr")))
                  .addActions(
                      DecisionClient.action(
                          "hero-a", DecisionClient.features("item", Map.of(), Map.of("color", "red"))))
                  .addActions(
                      DecisionClient.action(
                          "hero-b", DecisionClient.features("item", Map.of(), Map.of("color", "blue"))))
                  .build());
      System.out.printf(
          "event %s: show %s (p=%.3f)%n",
          decision.eventId(), decision.actionId(), decision.probability());
      boolean learned = client.reward(decision.eventId(), 1.0);
      System.out.println("reward stored, learned=" + learned);
    }
  }
}
