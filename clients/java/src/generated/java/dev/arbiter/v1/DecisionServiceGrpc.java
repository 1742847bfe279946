package dev.arbiter.v1;

import static io.grpc.MethodDescriptor.generateFullMethodName;

/**
 */
@javax.annotation.Generated(
    value = "by gRPC proto compiler",
    comments = "Source: protos/arbiter/v1/decision.proto")
@io.grpc.stub.annotations.GrpcGenerated
public final class DecisionServiceGrpc {

  private DecisionServiceGrpc() {}

  public static final String SERVICE_NAME = "arbiter.v1.DecisionService";

  // Static method descriptors that strictly reflect the proto.
  private static volatile io.grpc.MethodDescriptor<dev.arbiter.v1.ChooseRequest,
      dev.arbiter.v1.ChooseResponse> getChooseMethod;

  @io.grpc.stub.annotations.RpcMethod(
      fullMethodName = SERVICE_NAME + '/' + "Choose",
      requestType = dev.arbiter.v1.ChooseRequest.class,
      responseType = dev.arbiter.v1.ChooseResponse.class,
      methodType = io.grpc.MethodDescriptor.MethodType.UNARY)
  public static io.grpc.MethodDescriptor<dev.arbiter.v1.ChooseRequest,
      dev.arbiter.v1.ChooseResponse> getChooseMethod() {
    io.grpc.MethodDescriptor<dev.arbiter.v1.ChooseRequest, dev.arbiter.v1.ChooseResponse> getChooseMethod;
    if ((getChooseMethod = DecisionServiceGrpc.getChooseMethod) == null) {
      synchronized (DecisionServiceGrpc.class) {
        if ((getChooseMethod = DecisionServiceGrpc.getChooseMethod) == null) {
          DecisionServiceGrpc.getChooseMethod = getChooseMethod =
              io.grpc.MethodDescriptor.<dev.arbiter.v1.ChooseRequest, dev.arbiter.v1.ChooseResponse>newBuilder()
              .setType(io.grpc.MethodDescriptor.MethodType.UNARY)
              .setFullMethodName(generateFullMethodName(SERVICE_NAME, "Choose"))
              .setSampledToLocalTracing(true)
              .setRequestMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  dev.arbiter.v1.ChooseRequest.getDefaultInstance()))
              .setResponseMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  dev.arbiter.v1.ChooseResponse.getDefaultInstance()))
              .setSchemaDescriptor(new DecisionServiceMethodDescriptorSupplier("Choose"))
              .build();
        }
      }
    }
    return getChooseMethod;
  }

  private static volatile io.grpc.MethodDescriptor<dev.arbiter.v1.ChooseBatchRequest,
      dev.arbiter.v1.ChooseBatchResponse> getChooseBatchMethod;

  @io.grpc.stub.annotations.RpcMethod(
      fullMethodName = SERVICE_NAME + '/' + "ChooseBatch",
      requestType = dev.arbiter.v1.ChooseBatchRequest.class,
      responseType = dev.arbiter.v1.ChooseBatchResponse.class,
      methodType = io.grpc.MethodDescriptor.MethodType.UNARY)
  public static io.grpc.MethodDescriptor<dev.arbiter.v1.ChooseBatchRequest,
      dev.arbiter.v1.ChooseBatchResponse> getChooseBatchMethod() {
    io.grpc.MethodDescriptor<dev.arbiter.v1.ChooseBatchRequest, dev.arbiter.v1.ChooseBatchResponse> getChooseBatchMethod;
    if ((getChooseBatchMethod = DecisionServiceGrpc.getChooseBatchMethod) == null) {
      synchronized (DecisionServiceGrpc.class) {
        if ((getChooseBatchMethod = DecisionServiceGrpc.getChooseBatchMethod) == null) {
          DecisionServiceGrpc.getChooseBatchMethod = getChooseBatchMethod =
              io.grpc.MethodDescriptor.<dev.arbiter.v1.ChooseBatchRequest, dev.arbiter.v1.ChooseBatchResponse>newBuilder()
              .setType(io.grpc.MethodDescriptor.MethodType.UNARY)
              .setFullMethodName(generateFullMethodName(SERVICE_NAME, "ChooseBatch"))
              .setSampledToLocalTracing(true)
              .setRequestMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  dev.arbiter.v1.ChooseBatchRequest.getDefaultInstance()))
              .setResponseMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  dev.arbiter.v1.ChooseBatchResponse.getDefaultInstance()))
              .setSchemaDescriptor(new DecisionServiceMethodDescriptorSupplier("ChooseBatch"))
              .build();
        }
      }
    }
    return getChooseBatchMethod;
  }

  private static volatile io.grpc.MethodDescriptor<dev.arbiter.v1.RewardRequest,
      dev.arbiter.v1.RewardResponse> getRewardMethod;

  @io.grpc.stub.annotations.RpcMethod(
      fullMethodName = SERVICE_NAME + '/' + "Reward",
      requestType = dev.arbiter.v1.RewardRequest.class,
      responseType = dev.arbiter.v1.RewardResponse.class,
      methodType = io.grpc.MethodDescriptor.MethodType.UNARY)
  public static io.grpc.MethodDescriptor<dev.arbiter.v1.RewardRequest,
      dev.arbiter.v1.RewardResponse> getRewardMethod() {
    io.grpc.MethodDescriptor<dev.arbiter.v1.RewardRequest, dev.arbiter.v1.RewardResponse> getRewardMethod;
    if ((getRewardMethod = DecisionServiceGrpc.getRewardMethod) == null) {
      synchronized (DecisionServiceGrpc.class) {
        if ((getRewardMethod = DecisionServiceGrpc.getRewardMethod) == null) {
          DecisionServiceGrpc.getRewardMethod = getRewardMethod =
              io.grpc.MethodDescriptor.<dev.arbiter.v1.RewardRequest, dev.arbiter.v1.RewardResponse>newBuilder()
              .setType(io.grpc.MethodDescriptor.MethodType.UNARY)
              .setFullMethodName(generateFullMethodName(SERVICE_NAME, "Reward"))
              .setSampledToLocalTracing(true)
              .setRequestMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  dev.arbiter.v1.RewardRequest.getDefaultInstance()))
              .setResponseMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  dev.arbiter.v1.RewardResponse.getDefaultInstance()))
              .setSchemaDescriptor(new DecisionServiceMethodDescriptorSupplier("Reward"))
              .build();
        }
      }
    }
    return getRewardMethod;
  }

  private static volatile io.grpc.MethodDescriptor<dev.arbiter.v1.ActivateRequest,
      dev.arbiter.v1.ActivateResponse> getActivateMethod;

  @io.grpc.stub.annotations.RpcMethod(
      fullMethodName = SERVICE_NAME + '/' + "Activate",
      requestType = dev.arbiter.v1.ActivateRequest.class,
      responseType = dev.arbiter.v1.ActivateResponse.class,
      methodType = io.grpc.MethodDescriptor.MethodType.UNARY)
  public static io.grpc.MethodDescriptor<dev.arbiter.v1.ActivateRequest,
      dev.arbiter.v1.ActivateResponse> getActivateMethod() {
    io.grpc.MethodDescriptor<dev.arbiter.v1.ActivateRequest, dev.arbiter.v1.ActivateResponse> getActivateMethod;
    if ((getActivateMethod = DecisionServiceGrpc.getActivateMethod) == null) {
      synchronized (DecisionServiceGrpc.class) {
        if ((getActivateMethod = DecisionServiceGrpc.getActivateMethod) == null) {
          DecisionServiceGrpc.getActivateMethod = getActivateMethod =
              io.grpc.MethodDescriptor.<dev.arbiter.v1.ActivateRequest, dev.arbiter.v1.ActivateResponse>newBuilder()
              .setType(io.grpc.MethodDescriptor.MethodType.UNARY)
              .setFullMethodName(generateFullMethodName(SERVICE_NAME, "Activate"))
              .setSampledToLocalTracing(true)
              .setRequestMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  dev.arbiter.v1.ActivateRequest.getDefaultInstance()))
              .setResponseMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  dev.arbiter.v1.ActivateResponse.getDefaultInstance()))
              .setSchemaDescriptor(new DecisionServiceMethodDescriptorSupplier("Activate"))
              .build();
        }
      }
    }
    return getActivateMethod;
  }

  /**
   * Creates a new async stub that supports all call types for the service
   */
  public static DecisionServiceStub newStub(io.grpc.Channel channel) {
    io.grpc.stub.AbstractStub.StubFactory<DecisionServiceStub> factory =
      new io.grpc.stub.AbstractStub.StubFactory<DecisionServiceStub>() {
        @java.lang.Override
        public DecisionServiceStub newStub(io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
          return new DecisionServiceStub(channel, callOptions);
        }
      };
    return DecisionServiceStub.newStub(factory, channel);
  }

  /**
   * Creates a new blocking-style stub that supports unary and streaming output calls on the service
   */
  public static DecisionServiceBlockingStub newBlockingStub(
      io.grpc.Channel channel) {
    io.grpc.stub.AbstractStub.StubFactory<DecisionServiceBlockingStub> factory =
      new io.grpc.stub.AbstractStub.StubFactory<DecisionServiceBlockingStub>() {
        @java.lang.Override
        public DecisionServiceBlockingStub newStub(io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
          return new DecisionServiceBlockingStub(channel, callOptions);
        }
      };
    return DecisionServiceBlockingStub.newStub(factory, channel);
  }

  /**
   * Creates a new ListenableFuture-style stub that supports unary calls on the service
   */
  public static DecisionServiceFutureStub newFutureStub(
      io.grpc.Channel channel) {
    io.grpc.stub.AbstractStub.StubFactory<DecisionServiceFutureStub> factory =
      new io.grpc.stub.AbstractStub.StubFactory<DecisionServiceFutureStub>() {
        @java.lang.Override
        public DecisionServiceFutureStub newStub(io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
          return new DecisionServiceFutureStub(channel, callOptions);
        }
      };
    return DecisionServiceFutureStub.newStub(factory, channel);
  }

  /**
   */
  public static abstract class DecisionServiceImplBase implements io.grpc.BindableService {

    /**
     * <pre>
     * Picks one of the offered actions and logs the decision with its exact probability.
     * </pre>
     */
    public void choose(dev.arbiter.v1.ChooseRequest request,
        io.grpc.stub.StreamObserver<dev.arbiter.v1.ChooseResponse> responseObserver) {
      io.grpc.stub.ServerCalls.asyncUnimplementedUnaryCall(getChooseMethod(), responseObserver);
    }

    /**
     * <pre>
     * Many decisions in one call (at most `--max-batch`, default 1000; more: INVALID_ARGUMENT).
     * Each is decided, logged and answerable by Reward exactly as a Choose of its own; one that
     * fails (a bad request, an unknown experiment) fails alone, in its result.
     * </pre>
     */
    public void chooseBatch(dev.arbiter.v1.ChooseBatchRequest request,
        io.grpc.stub.StreamObserver<dev.arbiter.v1.ChooseBatchResponse> responseObserver) {
      io.grpc.stub.ServerCalls.asyncUnimplementedUnaryCall(getChooseBatchMethod(), responseObserver);
    }

    /**
     * <pre>
     * Joins a reward to a logged decision; the policy learns from it.
     * </pre>
     */
    public void reward(dev.arbiter.v1.RewardRequest request,
        io.grpc.stub.StreamObserver<dev.arbiter.v1.RewardResponse> responseObserver) {
      io.grpc.stub.ServerCalls.asyncUnimplementedUnaryCall(getRewardMethod(), responseObserver);
    }

    /**
     * <pre>
     * Starts the reward window of a deferred decision (one that was actually shown).
     * </pre>
     */
    public void activate(dev.arbiter.v1.ActivateRequest request,
        io.grpc.stub.StreamObserver<dev.arbiter.v1.ActivateResponse> responseObserver) {
      io.grpc.stub.ServerCalls.asyncUnimplementedUnaryCall(getActivateMethod(), responseObserver);
    }

    @java.lang.Override public final io.grpc.ServerServiceDefinition bindService() {
      return io.grpc.ServerServiceDefinition.builder(getServiceDescriptor())
          .addMethod(
            getChooseMethod(),
            io.grpc.stub.ServerCalls.asyncUnaryCall(
              new MethodHandlers<
                dev.arbiter.v1.ChooseRequest,
                dev.arbiter.v1.ChooseResponse>(
                  this, METHODID_CHOOSE)))
          .addMethod(
            getChooseBatchMethod(),
            io.grpc.stub.ServerCalls.asyncUnaryCall(
              new MethodHandlers<
                dev.arbiter.v1.ChooseBatchRequest,
                dev.arbiter.v1.ChooseBatchResponse>(
                  this, METHODID_CHOOSE_BATCH)))
          .addMethod(
            getRewardMethod(),
            io.grpc.stub.ServerCalls.asyncUnaryCall(
              new MethodHandlers<
                dev.arbiter.v1.RewardRequest,
                dev.arbiter.v1.RewardResponse>(
                  this, METHODID_REWARD)))
          .addMethod(
            getActivateMethod(),
            io.grpc.stub.ServerCalls.asyncUnaryCall(
              new MethodHandlers<
                dev.arbiter.v1.ActivateRequest,
                dev.arbiter.v1.ActivateResponse>(
                  this, METHODID_ACTIVATE)))
          .build();
    }
  }

  /**
   */
  public static final class DecisionServiceStub extends io.grpc.stub.AbstractAsyncStub<DecisionServiceStub> {
    private DecisionServiceStub(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      super(channel, callOptions);
    }

    @java.lang.Override
    protected DecisionServiceStub build(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      return new DecisionServiceStub(channel, callOptions);
    }

    /**
     * <pre>
     * Picks one of the offered actions and logs the decision with its exact probability.
     * </pre>
     */
    public void choose(dev.arbiter.v1.ChooseRequest request,
        io.grpc.stub.StreamObserver<dev.arbiter.v1.ChooseResponse> responseObserver) {
      io.grpc.stub.ClientCalls.asyncUnaryCall(
          getChannel().newCall(getChooseMethod(), getCallOptions()), request, responseObserver);
    }

    /**
     * <pre>
     * Many decisions in one call (at most `--max-batch`, default 1000; more: INVALID_ARGUMENT).
     * Each is decided, logged and answerable by Reward exactly as a Choose of its own; one that
     * fails (a bad request, an unknown experiment) fails alone, in its result.
     * </pre>
     */
    public void chooseBatch(dev.arbiter.v1.ChooseBatchRequest request,
        io.grpc.stub.StreamObserver<dev.arbiter.v1.ChooseBatchResponse> responseObserver) {
      io.grpc.stub.ClientCalls.asyncUnaryCall(
          getChannel().newCall(getChooseBatchMethod(), getCallOptions()), request, responseObserver);
    }

    /**
     * <pre>
     * Joins a reward to a logged decision; the policy learns from it.
     * </pre>
     */
    public void reward(dev.arbiter.v1.RewardRequest request,
        io.grpc.stub.StreamObserver<dev.arbiter.v1.RewardResponse> responseObserver) {
      io.grpc.stub.ClientCalls.asyncUnaryCall(
          getChannel().newCall(getRewardMethod(), getCallOptions()), request, responseObserver);
    }

    /**
     * <pre>
     * Starts the reward window of a deferred decision (one that was actually shown).
     * </pre>
     */
    public void activate(dev.arbiter.v1.ActivateRequest request,
        io.grpc.stub.StreamObserver<dev.arbiter.v1.ActivateResponse> responseObserver) {
      io.grpc.stub.ClientCalls.asyncUnaryCall(
          getChannel().newCall(getActivateMethod(), getCallOptions()), request, responseObserver);
    }
  }

  /**
   */
  public static final class DecisionServiceBlockingStub extends io.grpc.stub.AbstractBlockingStub<DecisionServiceBlockingStub> {
    private DecisionServiceBlockingStub(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      super(channel, callOptions);
    }

    @java.lang.Override
    protected DecisionServiceBlockingStub build(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      return new DecisionServiceBlockingStub(channel, callOptions);
    }

    /**
     * <pre>
     * Picks one of the offered actions and logs the decision with its exact probability.
     * </pre>
     */
    public dev.arbiter.v1.ChooseResponse choose(dev.arbiter.v1.ChooseRequest request) {
      return io.grpc.stub.ClientCalls.blockingUnaryCall(
          getChannel(), getChooseMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * Many decisions in one call (at most `--max-batch`, default 1000; more: INVALID_ARGUMENT).
     * Each is decided, logged and answerable by Reward exactly as a Choose of its own; one that
     * fails (a bad request, an unknown experiment) fails alone, in its result.
     * </pre>
     */
    public dev.arbiter.v1.ChooseBatchResponse chooseBatch(dev.arbiter.v1.ChooseBatchRequest request) {
      return io.grpc.stub.ClientCalls.blockingUnaryCall(
          getChannel(), getChooseBatchMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * Joins a reward to a logged decision; the policy learns from it.
     * </pre>
     */
    public dev.arbiter.v1.RewardResponse reward(dev.arbiter.v1.RewardRequest request) {
      return io.grpc.stub.ClientCalls.blockingUnaryCall(
          getChannel(), getRewardMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * Starts the reward window of a deferred decision (one that was actually shown).
     * </pre>
     */
    public dev.arbiter.v1.ActivateResponse activate(dev.arbiter.v1.ActivateRequest request) {
      return io.grpc.stub.ClientCalls.blockingUnaryCall(
          getChannel(), getActivateMethod(), getCallOptions(), request);
    }
  }

  /**
   */
  public static final class DecisionServiceFutureStub extends io.grpc.stub.AbstractFutureStub<DecisionServiceFutureStub> {
    private DecisionServiceFutureStub(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      super(channel, callOptions);
    }

    @java.lang.Override
    protected DecisionServiceFutureStub build(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      return new DecisionServiceFutureStub(channel, callOptions);
    }

    /**
     * <pre>
     * Picks one of the offered actions and logs the decision with its exact probability.
     * </pre>
     */
    public com.google.common.util.concurrent.ListenableFuture<dev.arbiter.v1.ChooseResponse> choose(
        dev.arbiter.v1.ChooseRequest request) {
      return io.grpc.stub.ClientCalls.futureUnaryCall(
          getChannel().newCall(getChooseMethod(), getCallOptions()), request);
    }

    /**
     * <pre>
     * Many decisions in one call (at most `--max-batch`, default 1000; more: INVALID_ARGUMENT).
     * Each is decided, logged and answerable by Reward exactly as a Choose of its own; one that
     * fails (a bad request, an unknown experiment) fails alone, in its result.
     * </pre>
     */
    public com.google.common.util.concurrent.ListenableFuture<dev.arbiter.v1.ChooseBatchResponse> chooseBatch(
        dev.arbiter.v1.ChooseBatchRequest request) {
      return io.grpc.stub.ClientCalls.futureUnaryCall(
          getChannel().newCall(getChooseBatchMethod(), getCallOptions()), request);
    }

    /**
     * <pre>
     * Joins a reward to a logged decision; the policy learns from it.
     * </pre>
     */
    public com.google.common.util.concurrent.ListenableFuture<dev.arbiter.v1.RewardResponse> reward(
        dev.arbiter.v1.RewardRequest request) {
      return io.grpc.stub.ClientCalls.futureUnaryCall(
          getChannel().newCall(getRewardMethod(), getCallOptions()), request);
    }

    /**
     * <pre>
     * Starts the reward window of a deferred decision (one that was actually shown).
     * </pre>
     */
    public com.google.common.util.concurrent.ListenableFuture<dev.arbiter.v1.ActivateResponse> activate(
        dev.arbiter.v1.ActivateRequest request) {
      return io.grpc.stub.ClientCalls.futureUnaryCall(
          getChannel().newCall(getActivateMethod(), getCallOptions()), request);
    }
  }

  private static final int METHODID_CHOOSE = 0;
  private static final int METHODID_CHOOSE_BATCH = 1;
  private static final int METHODID_REWARD = 2;
  private static final int METHODID_ACTIVATE = 3;

  private static final class MethodHandlers<Req, Resp> implements
      io.grpc.stub.ServerCalls.UnaryMethod<Req, Resp>,
      io.grpc.stub.ServerCalls.ServerStreamingMethod<Req, Resp>,
      io.grpc.stub.ServerCalls.ClientStreamingMethod<Req, Resp>,
      io.grpc.stub.ServerCalls.BidiStreamingMethod<Req, Resp> {
    private final DecisionServiceImplBase serviceImpl;
    private final int methodId;

    MethodHandlers(DecisionServiceImplBase serviceImpl, int methodId) {
      this.serviceImpl = serviceImpl;
      this.methodId = methodId;
    }

    @java.lang.Override
    @java.lang.SuppressWarnings("unchecked")
    public void invoke(Req request, io.grpc.stub.StreamObserver<Resp> responseObserver) {
      switch (methodId) {
        case METHODID_CHOOSE:
          serviceImpl.choose((dev.arbiter.v1.ChooseRequest) request,
              (io.grpc.stub.StreamObserver<dev.arbiter.v1.ChooseResponse>) responseObserver);
          break;
        case METHODID_CHOOSE_BATCH:
          serviceImpl.chooseBatch((dev.arbiter.v1.ChooseBatchRequest) request,
              (io.grpc.stub.StreamObserver<dev.arbiter.v1.ChooseBatchResponse>) responseObserver);
          break;
        case METHODID_REWARD:
          serviceImpl.reward((dev.arbiter.v1.RewardRequest) request,
              (io.grpc.stub.StreamObserver<dev.arbiter.v1.RewardResponse>) responseObserver);
          break;
        case METHODID_ACTIVATE:
          serviceImpl.activate((dev.arbiter.v1.ActivateRequest) request,
              (io.grpc.stub.StreamObserver<dev.arbiter.v1.ActivateResponse>) responseObserver);
          break;
        default:
          throw new AssertionError();
      }
    }

    @java.lang.Override
    @java.lang.SuppressWarnings("unchecked")
    public io.grpc.stub.StreamObserver<Req> invoke(
        io.grpc.stub.StreamObserver<Resp> responseObserver) {
      switch (methodId) {
        default:
          throw new AssertionError();
      }
    }
  }

  private static abstract class DecisionServiceBaseDescriptorSupplier
      implements io.grpc.protobuf.ProtoFileDescriptorSupplier, io.grpc.protobuf.ProtoServiceDescriptorSupplier {
    DecisionServiceBaseDescriptorSupplier() {}

    @java.lang.Override
    public com.google.protobuf.Descriptors.FileDescriptor getFileDescriptor() {
      return dev.arbiter.v1.DecisionProto.getDescriptor();
    }

    @java.lang.Override
    public com.google.protobuf.Descriptors.ServiceDescriptor getServiceDescriptor() {
      return getFileDescriptor().findServiceByName("DecisionService");
    }
  }

  private static final class DecisionServiceFileDescriptorSupplier
      extends DecisionServiceBaseDescriptorSupplier {
    DecisionServiceFileDescriptorSupplier() {}
  }

  private static final class DecisionServiceMethodDescriptorSupplier
      extends DecisionServiceBaseDescriptorSupplier
      implements io.grpc.protobuf.ProtoMethodDescriptorSupplier {
    private final String methodName;

    DecisionServiceMethodDescriptorSupplier(String methodName) {
      this.methodName = methodName;
    }

    @java.lang.Override
    public com.google.protobuf.Descriptors.MethodDescriptor getMethodDescriptor() {
      return getServiceDescriptor().findMethodByName(methodName);
    }
  }

  private static volatile io.grpc.ServiceDescriptor serviceDescriptor;

  public static io.grpc.ServiceDescriptor getServiceDescriptor() {
    io.grpc.ServiceDescriptor result = serviceDescriptor;
    if (result == null) {
      synchronized (DecisionServiceGrpc.class) {
        result = serviceDescriptor;
        if (result == null) {
          serviceDescriptor = result = io.grpc.ServiceDescriptor.newBuilder(SERVICE_NAME)
              .setSchemaDescriptor(new DecisionServiceFileDescriptorSupplier())
              .addMethod(getChooseMethod())
              .addMethod(getChooseBatchMethod())
              .addMethod(getRewardMethod())
              .addMethod(getActivateMethod())
              .build();
        }
      }
    }
    return result;
  }
}
