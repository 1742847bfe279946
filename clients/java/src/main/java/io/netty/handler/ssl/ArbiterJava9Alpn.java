package io.netty.handler.ssl;

import java.io.File;
import javax.net.ssl.SSLException;

/**
 * ALPN with the JDK's own TLS (Java 9+), for a Netty built without {@code
 * JdkAlpnApplicationProtocolNegotiator}: Debian's netty 4.1.48 leaves that class out (with the
 * Jetty ALPN it also supports), so gRPC's {@code GrpcSslContexts} cannot offer "h2" with the JDK
 * provider there. This does what upstream's negotiator does on Java 9+, with Netty's own {@code
 * Java9SslEngine}; it lives in Netty's package because that class is package-private. {@link
 * dev.arbiter.client.DecisionClient} uses it only when {@code GrpcSslContexts} fails that way.
 */
public final class ArbiterJava9Alpn {
  private ArbiterJava9Alpn() {}

  /**
   * A client context that offers "h2" over ALPN, trusts the certificates of {@code caFile} and,
   * unless null, presents {@code certFile} with {@code keyFile} (PEM, the key in PKCS#8).
   */
  @SuppressWarnings("deprecation")
  public static SslContext clientContext(File caFile, File certFile, File keyFile)
      throws SSLException {
    JdkApplicationProtocolNegotiator alpn =
        new JdkBaseApplicationProtocolNegotiator(
            (engine, negotiator, isServer) -> new Java9SslEngine(engine, negotiator, isServer),
            JdkBaseApplicationProtocolNegotiator.FAIL_SELECTOR_FACTORY,
            JdkBaseApplicationProtocolNegotiator.FAIL_SELECTION_LISTENER_FACTORY,
            "h2");
    return new JdkSslClientContext(
        caFile, null, certFile, keyFile, null, null, null, IdentityCipherSuiteFilter.INSTANCE,
        alpn, 0, 0);
  }
}
