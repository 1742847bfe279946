package dev.arbiter.client;

import dev.arbiter.v1.ChooseRequest;
import io.grpc.Status;
import java.io.File;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Checks the Java client against a real server at $ARBITER_TARGET (experiment
 * $ARBITER_EXPERIMENT, default "homepage"); tests/clients_live starts one and runs this. Prints one
 * line per check and exits 1 when any fails. For a server with TLS and tokens also
 * $ARBITER_TLS_CA ($ARBITER_TLS_CERT, $ARBITER_TLS_KEY for mTLS) and $ARBITER_TOKEN.
 */
public final class LiveCheck {
  private static final List<String> OFFERED = List.of("hero-a", "hero-b", "hero-c");
  private int passed;
  private int failed;

  private LiveCheck() {}

  public static void main(String[] args) {
    String target = System.getenv("ARBITER_TARGET");
    if (target == null || target.isEmpty()) {
      System.err.println(
          "ARBITER_TARGET is not set: start `arbiter serve` and set ARBITER_TARGET=host:port");
      System.exit(2);
    }
    String experiment = System.getenv().getOrDefault("ARBITER_EXPERIMENT", "homepage");
    if (experiment.isEmpty()) {
      experiment = "homepage";
    }
    LiveCheck check = new LiveCheck();
    File ca = file("ARBITER_TLS_CA");
    File cert = file("ARBITER_TLS_CERT");
    File key = file("ARBITER_TLS_KEY");
    String token = System.getenv("ARBITER_TOKEN");
    token = token == null || token.isEmpty() ? null : token;
    try (DecisionClient client =
        DecisionClient.connect(target, new DecisionClient.Connection(ca, cert, key, token))) {
      check.run(client, experiment);
    }
    if (token != null) {
      try (DecisionClient anonymous =
          DecisionClient.connect(target, new DecisionClient.Connection(ca, cert, key, null))) {
        check.expectFailure("without the token: UNAUTHENTICATED", anonymous, experiment,
            Status.Code.UNAUTHENTICATED);
      }
    }
    if (ca != null) {
      long began = System.nanoTime();
      try (DecisionClient plaintext = DecisionClient.connect(target)) {
        check.expectFailure("a plaintext client against the TLS server: UNAVAILABLE", plaintext,
            experiment, Status.Code.UNAVAILABLE);
      }
      long tookMs = (System.nanoTime() - began) / 1_000_000;
      if (tookMs < 8_000) {
        check.pass("... at once", tookMs + " ms");
      } else {
        check.fail("... at once", "took " + tookMs + " ms");
      }
    }
    System.out.printf("%d passed, %d failed%n", check.passed, check.failed);
    System.exit(check.failed == 0 ? 0 : 1);
  }

  private void run(DecisionClient client, String experiment) {
    ChooseRequest.Builder request =
        ChooseRequest.newBuilder()
            .setExperiment(experiment)
            .setUnitId("java-client-user")
            .addContext(
                DecisionClient.features("user", Map.of("age", 31.0), Map.of("lang", "java")));
    for (int i = 0; i < OFFERED.size(); i++) {
      request.addActions(
          DecisionClient.action(
              OFFERED.get(i), DecisionClient.features("item", Map.of("rank", (double) i), Map.of())));
    }

    DecisionClient.Decision decision;
    try {
      decision = client.choose(request.build());
    } catch (RuntimeException e) {
      fail("choose returns a valid decision", "Choose failed: " + e);
      fail("reward on that event succeeds", "skipped: no decision");
      fail("a second reward gets ALREADY_EXISTS", "skipped: no decision");
      checkNoActions(client, experiment);
      return;
    }
    String problem = invalidDecision(decision);
    if (problem == null) {
      pass("choose returns a valid decision", decision.toString());
    } else {
      fail("choose returns a valid decision", problem + " in " + decision);
    }

    try {
      boolean learned = client.reward(decision.eventId(), 1.0);
      pass("reward on that event succeeds", "learned=" + learned);
    } catch (RuntimeException e) {
      fail("reward on that event succeeds", "Reward(" + decision.eventId() + ") failed: " + e);
    }

    // A different value: a repeat of the stored value may count as an idempotent retry.
    try {
      client.reward(decision.eventId(), 0.0);
      fail("a second reward gets ALREADY_EXISTS", "the second Reward succeeded");
    } catch (RuntimeException e) {
      expectCode("a second reward gets ALREADY_EXISTS", e, Status.Code.ALREADY_EXISTS);
    }

    checkBatch(client, request.build());
    checkExplain(client, request.build());
    checkNoActions(client, experiment);
  }

  private void checkExplain(DecisionClient client, ChooseRequest plain) {
    String name = "choose with explain answers an explanation per action; without it none";
    try {
      DecisionClient.Decision without = client.choose(plain);
      DecisionClient.Decision with = client.choose(plain.toBuilder().setExplain(true).build());
      List<String> explained =
          with.explanations().stream().map(DecisionClient.Explanation::actionId).toList();
      if (!without.explanations().isEmpty()) {
        fail(name, "explanations without explain: " + without.explanations());
      } else if (!explained.equals(OFFERED)) {
        fail(name, "want one explanation per offered action, got " + with.explanations());
      } else if (!with.explanations().stream()
          .allMatch(
              e ->
                  Double.isFinite(e.score())
                      && !e.contributions().isEmpty()
                      && e.contributions().get(e.contributions().size() - 1).feature()
                          .equals("exploration"))) {
        fail(name, "want finite scores with LinUCB's exploration last, got " + with.explanations());
      } else {
        pass(name, with.explanations().get(0).toString());
      }
    } catch (RuntimeException e) {
      fail(name, "Choose failed: " + e);
    }
  }

  private void checkBatch(DecisionClient client, ChooseRequest good) {
    String name = "chooseBatch decides each request; a bad one fails alone";
    try {
      ChooseRequest bad = good.toBuilder().clearActions().build();
      List<DecisionClient.BatchResult> results = client.chooseBatch(List.of(good, bad, good));
      DecisionClient.BatchResult first = results.get(0);
      DecisionClient.BatchResult refused = results.get(1);
      if (results.size() != 3 || !first.ok() || !results.get(2).ok()) {
        fail(name, "want two decisions around a failure, got " + results);
      } else if (invalidDecision(first.decision()) != null) {
        fail(name, invalidDecision(first.decision()) + " in " + first.decision());
      } else if (refused.ok()
          || refused.status().getCode() != Status.Code.INVALID_ARGUMENT
          || !refused.status().getDescription().contains("`actions`")) {
        fail(name, "want INVALID_ARGUMENT naming actions, got " + refused);
      } else {
        client.reward(first.decision().eventId(), 1.0);
        pass(name, "and a batch decision is rewarded");
      }
    } catch (RuntimeException e) {
      fail(name, "ChooseBatch or Reward failed: " + e);
    }
    name = "an excluded action is never chosen and has probability 0";
    try {
      ChooseRequest excluding = good.toBuilder().addExcludedActionIds("hero-b").build();
      for (DecisionClient.BatchResult r :
          client.chooseBatch(java.util.Collections.nCopies(20, excluding))) {
        boolean zero =
            r.ok()
                && r.decision().ranking().stream()
                    .allMatch(x -> !x.actionId().equals("hero-b") || x.probability() == 0);
        if (!zero || r.decision().actionId().equals("hero-b")) {
          fail(name, "got " + r);
          return;
        }
      }
      pass(name, "20 decisions");
    } catch (RuntimeException e) {
      fail(name, "ChooseBatch failed: " + e);
    }
  }

  private static File file(String variable) {
    String path = System.getenv(variable);
    return path == null || path.isEmpty() ? null : new File(path);
  }

  private void expectFailure(String name, DecisionClient client, String experiment, Status.Code want) {
    try {
      client.choose(
          ChooseRequest.newBuilder()
              .setExperiment(experiment)
              .addActions(DecisionClient.action("hero-a"))
              .build());
      fail(name, "the call succeeded");
    } catch (RuntimeException e) {
      expectCode(name, e, want);
    }
  }

  private void checkNoActions(DecisionClient client, String experiment) {
    String name = "choose without actions gets INVALID_ARGUMENT";
    try {
      client.choose(
          ChooseRequest.newBuilder().setExperiment(experiment).setUnitId("java-client-user").build());
      fail(name, "Choose without actions succeeded");
    } catch (RuntimeException e) {
      expectCode(name, e, Status.Code.INVALID_ARGUMENT);
    }
  }

  private void expectCode(String name, RuntimeException e, Status.Code want) {
    Status.Code got = DecisionClient.code(e);
    if (got == want) {
      pass(name, "got " + got);
    } else {
      fail(name, "want " + want + ", got " + (got == null ? e.toString() : got + ": " + e.getMessage()));
    }
  }

  /** What is wrong with {@code d} as a decision over OFFERED, or null when it is valid. */
  static String invalidDecision(DecisionClient.Decision d) {
    if (d.eventId().isEmpty()) {
      return "empty event_id";
    }
    if (!OFFERED.contains(d.actionId())) {
      return "action_id " + d.actionId() + " is not one of " + OFFERED;
    }
    if (!(d.probability() > 0 && d.probability() <= 1)) {
      return "probability " + d.probability() + " is not in (0, 1]";
    }
    if (d.ranking().size() != OFFERED.size()) {
      return "ranking has " + d.ranking().size() + " actions, " + OFFERED.size() + " were offered";
    }
    Set<String> seen = new HashSet<>();
    double sum = 0;
    for (DecisionClient.Ranked r : d.ranking()) {
      if (!OFFERED.contains(r.actionId()) || !seen.add(r.actionId())) {
        return "ranking action " + r.actionId() + " is not offered or is repeated";
      }
      if (r.probability() < 0 || r.probability() > 1) {
        return "ranking probability " + r.probability() + " is not in [0, 1]";
      }
      sum += r.probability();
    }
    if (Math.abs(sum - 1) > 1e-6) {
      return "ranking probabilities sum to " + sum + ", not 1";
    }
    DecisionClient.Ranked first = d.ranking().get(0);
    if (!first.actionId().equals(d.actionId())
        || Math.abs(first.probability() - d.probability()) > 1e-9) {
      return "ranking starts with " + first + ", not the chosen action with its probability";
    }
    return null;
  }

  private void pass(String name, String detail) {
    passed++;
    System.out.println("ok   " + name + " (" + detail + ")");
  }

  private void fail(String name, String detail) {
    failed++;
    System.out.println("FAIL " + name + ": " + detail);
  }
}
