package dev.arbiter.client;

import dev.arbiter.v1.Action;
import dev.arbiter.v1.ActionExplanation;
import dev.arbiter.v1.ActivateRequest;
import dev.arbiter.v1.ChooseBatchRequest;
import dev.arbiter.v1.ChooseBatchResult;
import dev.arbiter.v1.ChooseRequest;
import dev.arbiter.v1.ChooseResponse;
import dev.arbiter.v1.DecisionServiceGrpc;
import dev.arbiter.v1.FeatureContribution;
import dev.arbiter.v1.Namespace;
import dev.arbiter.v1.RankedAction;
import dev.arbiter.v1.RewardRequest;
import io.grpc.Channel;
import io.grpc.ManagedChannel;
import io.grpc.Metadata;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.netty.GrpcSslContexts;
import io.grpc.netty.NettyChannelBuilder;
import io.grpc.stub.MetadataUtils;
import io.netty.handler.ssl.ArbiterJava9Alpn;
import io.netty.handler.ssl.SslContext;
import io.netty.handler.ssl.SslContextBuilder;
import java.io.File;
import java.io.UncheckedIOException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

/**
 * Blocking client for the Arbiter decision engine.
 *
 * <pre>{@code
 * try (DecisionClient client = DecisionClient.connect("127.0.0.1:50051")) {
 *   Decision d = client.choose(ChooseRequest.newBuilder()
 *       .setExperiment("homepage")
 *       .setUnitId("user-42")
 *       .addContext(DecisionClient.features("user", Map.of("age", 31.0), Map.of()))
 *       .addActions(DecisionClient.action("hero-a"))
 *       .addActions(DecisionClient.action("hero-b"))
 *       .build());
 *   boolean learned = client.reward(d.eventId(), 1.0);
 *   // Many decisions in one call: one result per request, in order; a refused one fails alone.
 *   for (DecisionClient.BatchResult r : client.chooseBatch(List.of(requestA, requestB))) {
 *     if (r.ok()) use(r.decision()); else log(r.status());
 *   }
 * }
 * }</pre>
 *
 * <p>A server with TLS and tokens: {@code DecisionClient.connect(target, new
 * DecisionClient.Connection(new File("ca.pem"), new File("client.pem"), new
 * File("client-key.pem"), token))} (PEM files; the client certificate and key only for a server
 * that requires one, the key in PKCS#8).
 *
 * <p>Failed calls throw {@link StatusRuntimeException}; {@link #code(Throwable)} gives its code:
 * INVALID_ARGUMENT for a bad request, NOT_FOUND for an unknown experiment or event,
 * ALREADY_EXISTS for a second reward of one event, UNAUTHENTICATED without a known token,
 * PERMISSION_DENIED for a token without the method's role.
 */
public final class DecisionClient implements AutoCloseable {
  /** One action of the distribution a decision was drawn from. */
  public record Ranked(String actionId, double probability) {}

  /**
   * One feature's part of an action's score: {@code feature} is {@code namespace.name}, {@code
   * namespace.name=value}, or {@code exploration} for the exploration part of a UCB/TS score.
   */
  public record Contribution(String feature, double contribution) {}

  /** Why {@code actionId} scored {@code score}: its largest contributions by magnitude. */
  public record Explanation(String actionId, double score, List<Contribution> contributions) {}

  /**
   * What Choose answers. {@code probability} is the exact probability with which {@code
   * actionId} was drawn, in (0, 1]; {@code ranking} is the full distribution, chosen action first;
   * {@code explanations}, for a request with {@code setExplain(true)}, one per scored action from
   * the serving model (empty otherwise, or from a policy that cannot explain itself).
   */
  public record Decision(
      String eventId,
      String actionId,
      double probability,
      List<Ranked> ranking,
      String variant,
      String modelVersion,
      List<Explanation> explanations) {}

  /**
   * One result of {@link #chooseBatch}: the decision, or (decision null) the status — code and a
   * description naming the field — that {@link #choose} would have thrown for that request.
   */
  public record BatchResult(Decision decision, Status status) {
    public boolean ok() {
      return decision != null;
    }
  }

  /**
   * How {@link #connect(String, Connection)} reaches a server. TLS when {@code caFile} is set (it
   * verifies the server); {@code certFile} and {@code keyFile} present a client certificate
   * (mTLS); {@code token} goes with every call as {@code authorization: Bearer <token>}. Null
   * fields are unset; all null is plaintext without a token.
   */
  public record Connection(File caFile, File certFile, File keyFile, String token) {
    public Connection {
      if ((certFile == null) != (keyFile == null)) {
        throw new IllegalArgumentException("certFile and keyFile go together");
      }
      if (certFile != null && caFile == null) {
        throw new IllegalArgumentException("a client certificate needs TLS: give caFile");
      }
      if (token != null && (token.isEmpty() || !token.strip().equals(token))) {
        throw new IllegalArgumentException("token must be non-empty, without surrounding spaces");
      }
    }
  }

  private static final Metadata.Key<String> AUTHORIZATION =
      Metadata.Key.of("authorization", Metadata.ASCII_STRING_MARSHALLER);

  private final ManagedChannel ownedChannel; // null when the caller owns the channel
  private final DecisionServiceGrpc.DecisionServiceBlockingStub stub;
  private final Duration timeout;

  private DecisionClient(ManagedChannel owned, Channel channel, Duration timeout) {
    this.ownedChannel = owned;
    this.stub = DecisionServiceGrpc.newBlockingStub(channel);
    this.timeout = timeout;
  }

  /** Connects to {@code target} ("host:port") in plaintext, with a 10 s deadline per call. */
  public static DecisionClient connect(String target) {
    ManagedChannel channel = NettyChannelBuilder.forTarget(target).usePlaintext().build();
    return new DecisionClient(channel, channel, Duration.ofSeconds(10));
  }

  /** Connects to {@code target} as {@code connection} says, with a 10 s deadline per call. */
  public static DecisionClient connect(String target, Connection connection) {
    NettyChannelBuilder builder = NettyChannelBuilder.forTarget(target);
    if (connection.caFile() == null) {
      builder.usePlaintext();
    } else {
      try {
        builder.sslContext(sslContext(connection));
      } catch (javax.net.ssl.SSLException e) {
        throw new UncheckedIOException("cannot set up TLS: " + e.getMessage(), e);
      }
    }
    ManagedChannel channel = builder.build();
    DecisionClient client = new DecisionClient(channel, channel, Duration.ofSeconds(10));
    return connection.token() == null ? client : client.withToken(connection.token());
  }

  private static SslContext sslContext(Connection connection) throws javax.net.ssl.SSLException {
    SslContextBuilder ssl = GrpcSslContexts.forClient().trustManager(connection.caFile());
    if (connection.certFile() != null) {
      ssl.keyManager(connection.certFile(), connection.keyFile());
    }
    try {
      return ssl.build();
    } catch (UnsupportedOperationException e) { // a Netty without JDK ALPN (Debian's 4.1.48)
      return ArbiterJava9Alpn.clientContext(
          connection.caFile(), connection.certFile(), connection.keyFile());
    }
  }

  /** Wraps a channel the caller owns and closes (TLS, load balancing, interceptors...). */
  public static DecisionClient over(Channel channel, Duration timeout) {
    return new DecisionClient(null, channel, timeout);
  }

  private DecisionClient(
      ManagedChannel owned, DecisionServiceGrpc.DecisionServiceBlockingStub stub, Duration timeout) {
    this.ownedChannel = owned;
    this.stub = stub;
    this.timeout = timeout;
  }

  /**
   * This client sending {@code token} with every call ({@code authorization: Bearer <token>}),
   * on the same channel (closing either closes it when {@link #connect} opened it).
   */
  public DecisionClient withToken(String token) {
    Metadata headers = new Metadata();
    headers.put(AUTHORIZATION, "Bearer " + token);
    return new DecisionClient(
        ownedChannel, stub.withInterceptors(MetadataUtils.newAttachHeadersInterceptor(headers)), timeout);
  }

  private DecisionServiceGrpc.DecisionServiceBlockingStub call() {
    return stub.withDeadlineAfter(timeout.toMillis(), TimeUnit.MILLISECONDS);
  }

  /** Picks one of the offered actions; the server logs the decision before answering. */
  public Decision choose(ChooseRequest request) {
    return decision(call().choose(request));
  }

  /**
   * Many decisions in one call (the server caps the count, {@code --max-batch}, default 1000).
   * Each is decided, logged and rewardable exactly as with {@link #choose}, and excluded actions
   * ({@code addExcludedActionIds}) are never chosen; a request the server refuses fails alone, in
   * its {@link BatchResult}. Throws {@link StatusRuntimeException} only when the call as a whole
   * fails.
   */
  public List<BatchResult> chooseBatch(List<ChooseRequest> requests) {
    List<BatchResult> results = new ArrayList<>(requests.size());
    for (ChooseBatchResult r :
        call().chooseBatch(ChooseBatchRequest.newBuilder().addAllRequests(requests).build())
            .getResultsList()) {
      results.add(
          r.getCode() == 0
              ? new BatchResult(decision(r.getResponse()), Status.OK)
              : new BatchResult(
                  null, Status.fromCodeValue(r.getCode()).withDescription(r.getMessage())));
    }
    return List.copyOf(results);
  }

  private static Decision decision(ChooseResponse r) {
    List<Ranked> ranking = new ArrayList<>(r.getRankingCount());
    for (RankedAction a : r.getRankingList()) {
      ranking.add(new Ranked(a.getActionId(), a.getProbability()));
    }
    List<Explanation> explanations = new ArrayList<>(r.getExplanationsCount());
    for (ActionExplanation e : r.getExplanationsList()) {
      List<Contribution> contributions = new ArrayList<>(e.getContributionsCount());
      for (FeatureContribution c : e.getContributionsList()) {
        contributions.add(new Contribution(c.getFeature(), c.getContribution()));
      }
      explanations.add(new Explanation(e.getActionId(), e.getScore(), List.copyOf(contributions)));
    }
    return new Decision(
        r.getEventId(),
        r.getActionId(),
        r.getProbability(),
        List.copyOf(ranking),
        r.getVariant(),
        r.getModelVersion(),
        List.copyOf(explanations));
  }

  /**
   * Joins {@code value} to the decision {@code eventId}. Returns true when the policy learns from
   * it (now or when the reward window closes), false when it was stored for evaluation only.
   */
  public boolean reward(String eventId, double value) {
    return reward(eventId, value, "");
  }

  /**
   * {@link #reward(String, double)} with an idempotency key: a retried call with the same
   * (eventId, rewardId) is stored once, so it is safe to retry after a timeout.
   */
  public boolean reward(String eventId, double value, String rewardId) {
    if (eventId == null || eventId.isEmpty()) {
      throw new IllegalArgumentException("reward needs the event id of a decision");
    }
    RewardRequest request =
        RewardRequest.newBuilder().setEventId(eventId).setValue(value).setRewardId(rewardId).build();
    return call().reward(request).getLearned();
  }

  /** Starts the reward window of a deferred decision that was actually shown. */
  public void activate(String eventId) {
    call().activate(ActivateRequest.newBuilder().setEventId(eventId).build());
  }

  /** A namespace of numeric and categorical (one-hot) features. */
  public static Namespace features(
      String name, Map<String, Double> numbers, Map<String, String> categories) {
    return Namespace.newBuilder()
        .setName(name)
        .putAllNumbers(numbers)
        .putAllCategories(categories)
        .build();
  }

  /** An action with its own features. */
  public static Action action(String id, Namespace... features) {
    return Action.newBuilder().setId(id).addAllFeatures(List.of(features)).build();
  }

  /** The gRPC status code of a failed call, or null when {@code t} is not a gRPC error. */
  public static Status.Code code(Throwable t) {
    return t instanceof StatusRuntimeException e ? e.getStatus().getCode() : null;
  }

  /** Closes the channel that {@link #connect} opened; does nothing for {@link #over}. */
  @Override
  public void close() {
    if (ownedChannel == null) {
      return;
    }
    ownedChannel.shutdown();
    try {
      if (!ownedChannel.awaitTermination(5, TimeUnit.SECONDS)) {
        ownedChannel.shutdownNow();
      }
    } catch (InterruptedException e) {
      ownedChannel.shutdownNow();
      Thread.currentThread().interrupt();
    }
  }
}
