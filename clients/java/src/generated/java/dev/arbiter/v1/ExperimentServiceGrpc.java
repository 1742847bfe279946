package dev.arbiter.v1;

import static io.grpc.MethodDescriptor.generateFullMethodName;

/**
 */
@javax.annotation.Generated(
    value = "by gRPC proto compiler",
    comments = "Source: protos/arbiter/v1/experiments.proto")
@io.grpc.stub.annotations.GrpcGenerated
public final class ExperimentServiceGrpc {

  private ExperimentServiceGrpc() {}

  public static final String SERVICE_NAME = "arbiter.v1.ExperimentService";

  // Static method descriptors that strictly reflect the proto.
  private static volatile io.grpc.MethodDescriptor<dev.arbiter.v1.ListExperimentsRequest,
      dev.arbiter.v1.ListExperimentsResponse> getListExperimentsMethod;

  @io.grpc.stub.annotations.RpcMethod(
      fullMethodName = SERVICE_NAME + '/' + "ListExperiments",
      requestType = dev.arbiter.v1.ListExperimentsRequest.class,
      responseType = dev.arbiter.v1.ListExperimentsResponse.class,
      methodType = io.grpc.MethodDescriptor.MethodType.UNARY)
  public static io.grpc.MethodDescriptor<dev.arbiter.v1.ListExperimentsRequest,
      dev.arbiter.v1.ListExperimentsResponse> getListExperimentsMethod() {
    io.grpc.MethodDescriptor<dev.arbiter.v1.ListExperimentsRequest, dev.arbiter.v1.ListExperimentsResponse> getListExperimentsMethod;
    if ((getListExperimentsMethod = ExperimentServiceGrpc.getListExperimentsMethod) == null) {
      synchronized (ExperimentServiceGrpc.class) {
        if ((getListExperimentsMethod = ExperimentServiceGrpc.getListExperimentsMethod) == null) {
          ExperimentServiceGrpc.getListExperimentsMethod = getListExperimentsMethod =
              io.grpc.MethodDescriptor.<dev.arbiter.v1.ListExperimentsRequest, dev.arbiter.v1.ListExperimentsResponse>newBuilder()
              .setType(io.grpc.MethodDescriptor.MethodType.UNARY)
              .setFullMethodName(generateFullMethodName(SERVICE_NAME, "ListExperiments"))
              .setSampledToLocalTracing(true)
              .setRequestMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  dev.arbiter.v1.ListExperimentsRequest.getDefaultInstance()))
              .setResponseMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  dev.arbiter.v1.ListExperimentsResponse.getDefaultInstance()))
              .setSchemaDescriptor(new ExperimentServiceMethodDescriptorSupplier("ListExperiments"))
              .build();
        }
      }
    }
    return getListExperimentsMethod;
  }

  private static volatile io.grpc.MethodDescriptor<dev.arbiter.v1.GetExperimentRequest,
      dev.arbiter.v1.Experiment> getGetExperimentMethod;

  @io.grpc.stub.annotations.RpcMethod(
      fullMethodName = SERVICE_NAME + '/' + "GetExperiment",
      requestType = dev.arbiter.v1.GetExperimentRequest.class,
      responseType = dev.arbiter.v1.Experiment.class,
      methodType = io.grpc.MethodDescriptor.MethodType.UNARY)
  public static io.grpc.MethodDescriptor<dev.arbiter.v1.GetExperimentRequest,
      dev.arbiter.v1.Experiment> getGetExperimentMethod() {
    io.grpc.MethodDescriptor<dev.arbiter.v1.GetExperimentRequest, dev.arbiter.v1.Experiment> getGetExperimentMethod;
    if ((getGetExperimentMethod = ExperimentServiceGrpc.getGetExperimentMethod) == null) {
      synchronized (ExperimentServiceGrpc.class) {
        if ((getGetExperimentMethod = ExperimentServiceGrpc.getGetExperimentMethod) == null) {
          ExperimentServiceGrpc.getGetExperimentMethod = getGetExperimentMethod =
              io.grpc.MethodDescriptor.<dev.arbiter.v1.GetExperimentRequest, dev.arbiter.v1.Experiment>newBuilder()
              .setType(io.grpc.MethodDescriptor.MethodType.UNARY)
              .setFullMethodName(generateFullMethodName(SERVICE_NAME, "GetExperiment"))
              .setSampledToLocalTracing(true)
              .setRequestMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  dev.arbiter.v1.GetExperimentRequest.getDefaultInstance()))
              .setResponseMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  dev.arbiter.v1.Experiment.getDefaultInstance()))
              .setSchemaDescriptor(new ExperimentServiceMethodDescriptorSupplier("GetExperiment"))
              .build();
        }
      }
    }
    return getGetExperimentMethod;
  }

  private static volatile io.grpc.MethodDescriptor<dev.arbiter.v1.GetReportRequest,
      dev.arbiter.v1.Report> getGetReportMethod;

  @io.grpc.stub.annotations.RpcMethod(
      fullMethodName = SERVICE_NAME + '/' + "GetReport",
      requestType = dev.arbiter.v1.GetReportRequest.class,
      responseType = dev.arbiter.v1.Report.class,
      methodType = io.grpc.MethodDescriptor.MethodType.UNARY)
  public static io.grpc.MethodDescriptor<dev.arbiter.v1.GetReportRequest,
      dev.arbiter.v1.Report> getGetReportMethod() {
    io.grpc.MethodDescriptor<dev.arbiter.v1.GetReportRequest, dev.arbiter.v1.Report> getGetReportMethod;
    if ((getGetReportMethod = ExperimentServiceGrpc.getGetReportMethod) == null) {
      synchronized (ExperimentServiceGrpc.class) {
        if ((getGetReportMethod = ExperimentServiceGrpc.getGetReportMethod) == null) {
          ExperimentServiceGrpc.getGetReportMethod = getGetReportMethod =
              io.grpc.MethodDescriptor.<dev.arbiter.v1.GetReportRequest, dev.arbiter.v1.Report>newBuilder()
              .setType(io.grpc.MethodDescriptor.MethodType.UNARY)
              .setFullMethodName(generateFullMethodName(SERVICE_NAME, "GetReport"))
              .setSampledToLocalTracing(true)
              .setRequestMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  dev.arbiter.v1.GetReportRequest.getDefaultInstance()))
              .setResponseMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  dev.arbiter.v1.Report.getDefaultInstance()))
              .setSchemaDescriptor(new ExperimentServiceMethodDescriptorSupplier("GetReport"))
              .build();
        }
      }
    }
    return getGetReportMethod;
  }

  private static volatile io.grpc.MethodDescriptor<dev.arbiter.v1.SetTrafficRequest,
      dev.arbiter.v1.Experiment> getSetTrafficMethod;

  @io.grpc.stub.annotations.RpcMethod(
      fullMethodName = SERVICE_NAME + '/' + "SetTraffic",
      requestType = dev.arbiter.v1.SetTrafficRequest.class,
      responseType = dev.arbiter.v1.Experiment.class,
      methodType = io.grpc.MethodDescriptor.MethodType.UNARY)
  public static io.grpc.MethodDescriptor<dev.arbiter.v1.SetTrafficRequest,
      dev.arbiter.v1.Experiment> getSetTrafficMethod() {
    io.grpc.MethodDescriptor<dev.arbiter.v1.SetTrafficRequest, dev.arbiter.v1.Experiment> getSetTrafficMethod;
    if ((getSetTrafficMethod = ExperimentServiceGrpc.getSetTrafficMethod) == null) {
      synchronized (ExperimentServiceGrpc.class) {
        if ((getSetTrafficMethod = ExperimentServiceGrpc.getSetTrafficMethod) == null) {
          ExperimentServiceGrpc.getSetTrafficMethod = getSetTrafficMethod =
              io.grpc.MethodDescriptor.<dev.arbiter.v1.SetTrafficRequest, dev.arbiter.v1.Experiment>newBuilder()
              .setType(io.grpc.MethodDescriptor.MethodType.UNARY)
              .setFullMethodName(generateFullMethodName(SERVICE_NAME, "SetTraffic"))
              .setSampledToLocalTracing(true)
              .setRequestMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  dev.arbiter.v1.SetTrafficRequest.getDefaultInstance()))
              .setResponseMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  dev.arbiter.v1.Experiment.getDefaultInstance()))
              .setSchemaDescriptor(new ExperimentServiceMethodDescriptorSupplier("SetTraffic"))
              .build();
        }
      }
    }
    return getSetTrafficMethod;
  }

  private static volatile io.grpc.MethodDescriptor<dev.arbiter.v1.PromoteRequest,
      dev.arbiter.v1.PromoteResponse> getPromoteMethod;

  @io.grpc.stub.annotations.RpcMethod(
      fullMethodName = SERVICE_NAME + '/' + "Promote",
      requestType = dev.arbiter.v1.PromoteRequest.class,
      responseType = dev.arbiter.v1.PromoteResponse.class,
      methodType = io.grpc.MethodDescriptor.MethodType.UNARY)
  public static io.grpc.MethodDescriptor<dev.arbiter.v1.PromoteRequest,
      dev.arbiter.v1.PromoteResponse> getPromoteMethod() {
    io.grpc.MethodDescriptor<dev.arbiter.v1.PromoteRequest, dev.arbiter.v1.PromoteResponse> getPromoteMethod;
    if ((getPromoteMethod = ExperimentServiceGrpc.getPromoteMethod) == null) {
      synchronized (ExperimentServiceGrpc.class) {
        if ((getPromoteMethod = ExperimentServiceGrpc.getPromoteMethod) == null) {
          ExperimentServiceGrpc.getPromoteMethod = getPromoteMethod =
              io.grpc.MethodDescriptor.<dev.arbiter.v1.PromoteRequest, dev.arbiter.v1.PromoteResponse>newBuilder()
              .setType(io.grpc.MethodDescriptor.MethodType.UNARY)
              .setFullMethodName(generateFullMethodName(SERVICE_NAME, "Promote"))
              .setSampledToLocalTracing(true)
              .setRequestMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  dev.arbiter.v1.PromoteRequest.getDefaultInstance()))
              .setResponseMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  dev.arbiter.v1.PromoteResponse.getDefaultInstance()))
              .setSchemaDescriptor(new ExperimentServiceMethodDescriptorSupplier("Promote"))
              .build();
        }
      }
    }
    return getPromoteMethod;
  }

  private static volatile io.grpc.MethodDescriptor<dev.arbiter.v1.SetModeRequest,
      dev.arbiter.v1.Experiment> getSetModeMethod;

  @io.grpc.stub.annotations.RpcMethod(
      fullMethodName = SERVICE_NAME + '/' + "SetMode",
      requestType = dev.arbiter.v1.SetModeRequest.class,
      responseType = dev.arbiter.v1.Experiment.class,
      methodType = io.grpc.MethodDescriptor.MethodType.UNARY)
  public static io.grpc.MethodDescriptor<dev.arbiter.v1.SetModeRequest,
      dev.arbiter.v1.Experiment> getSetModeMethod() {
    io.grpc.MethodDescriptor<dev.arbiter.v1.SetModeRequest, dev.arbiter.v1.Experiment> getSetModeMethod;
    if ((getSetModeMethod = ExperimentServiceGrpc.getSetModeMethod) == null) {
      synchronized (ExperimentServiceGrpc.class) {
        if ((getSetModeMethod = ExperimentServiceGrpc.getSetModeMethod) == null) {
          ExperimentServiceGrpc.getSetModeMethod = getSetModeMethod =
              io.grpc.MethodDescriptor.<dev.arbiter.v1.SetModeRequest, dev.arbiter.v1.Experiment>newBuilder()
              .setType(io.grpc.MethodDescriptor.MethodType.UNARY)
              .setFullMethodName(generateFullMethodName(SERVICE_NAME, "SetMode"))
              .setSampledToLocalTracing(true)
              .setRequestMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  dev.arbiter.v1.SetModeRequest.getDefaultInstance()))
              .setResponseMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  dev.arbiter.v1.Experiment.getDefaultInstance()))
              .setSchemaDescriptor(new ExperimentServiceMethodDescriptorSupplier("SetMode"))
              .build();
        }
      }
    }
    return getSetModeMethod;
  }

  private static volatile io.grpc.MethodDescriptor<dev.arbiter.v1.EraseUnitRequest,
      dev.arbiter.v1.EraseUnitResponse> getEraseUnitMethod;

  @io.grpc.stub.annotations.RpcMethod(
      fullMethodName = SERVICE_NAME + '/' + "EraseUnit",
      requestType = dev.arbiter.v1.EraseUnitRequest.class,
      responseType = dev.arbiter.v1.EraseUnitResponse.class,
      methodType = io.grpc.MethodDescriptor.MethodType.UNARY)
  public static io.grpc.MethodDescriptor<dev.arbiter.v1.EraseUnitRequest,
      dev.arbiter.v1.EraseUnitResponse> getEraseUnitMethod() {
    io.grpc.MethodDescriptor<dev.arbiter.v1.EraseUnitRequest, dev.arbiter.v1.EraseUnitResponse> getEraseUnitMethod;
    if ((getEraseUnitMethod = ExperimentServiceGrpc.getEraseUnitMethod) == null) {
      synchronized (ExperimentServiceGrpc.class) {
        if ((getEraseUnitMethod = ExperimentServiceGrpc.getEraseUnitMethod) == null) {
          ExperimentServiceGrpc.getEraseUnitMethod = getEraseUnitMethod =
              io.grpc.MethodDescriptor.<dev.arbiter.v1.EraseUnitRequest, dev.arbiter.v1.EraseUnitResponse>newBuilder()
              .setType(io.grpc.MethodDescriptor.MethodType.UNARY)
              .setFullMethodName(generateFullMethodName(SERVICE_NAME, "EraseUnit"))
              .setSampledToLocalTracing(true)
              .setRequestMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  dev.arbiter.v1.EraseUnitRequest.getDefaultInstance()))
              .setResponseMarshaller(io.grpc.protobuf.ProtoUtils.marshaller(
                  dev.arbiter.v1.EraseUnitResponse.getDefaultInstance()))
              .setSchemaDescriptor(new ExperimentServiceMethodDescriptorSupplier("EraseUnit"))
              .build();
        }
      }
    }
    return getEraseUnitMethod;
  }

  /**
   * Creates a new async stub that supports all call types for the service
   */
  public static ExperimentServiceStub newStub(io.grpc.Channel channel) {
    io.grpc.stub.AbstractStub.StubFactory<ExperimentServiceStub> factory =
      new io.grpc.stub.AbstractStub.StubFactory<ExperimentServiceStub>() {
        @java.lang.Override
        public ExperimentServiceStub newStub(io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
          return new ExperimentServiceStub(channel, callOptions);
        }
      };
    return ExperimentServiceStub.newStub(factory, channel);
  }

  /**
   * Creates a new blocking-style stub that supports unary and streaming output calls on the service
   */
  public static ExperimentServiceBlockingStub newBlockingStub(
      io.grpc.Channel channel) {
    io.grpc.stub.AbstractStub.StubFactory<ExperimentServiceBlockingStub> factory =
      new io.grpc.stub.AbstractStub.StubFactory<ExperimentServiceBlockingStub>() {
        @java.lang.Override
        public ExperimentServiceBlockingStub newStub(io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
          return new ExperimentServiceBlockingStub(channel, callOptions);
        }
      };
    return ExperimentServiceBlockingStub.newStub(factory, channel);
  }

  /**
   * Creates a new ListenableFuture-style stub that supports unary calls on the service
   */
  public static ExperimentServiceFutureStub newFutureStub(
      io.grpc.Channel channel) {
    io.grpc.stub.AbstractStub.StubFactory<ExperimentServiceFutureStub> factory =
      new io.grpc.stub.AbstractStub.StubFactory<ExperimentServiceFutureStub>() {
        @java.lang.Override
        public ExperimentServiceFutureStub newStub(io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
          return new ExperimentServiceFutureStub(channel, callOptions);
        }
      };
    return ExperimentServiceFutureStub.newStub(factory, channel);
  }

  /**
   */
  public static abstract class ExperimentServiceImplBase implements io.grpc.BindableService {

    /**
     */
    public void listExperiments(dev.arbiter.v1.ListExperimentsRequest request,
        io.grpc.stub.StreamObserver<dev.arbiter.v1.ListExperimentsResponse> responseObserver) {
      io.grpc.stub.ServerCalls.asyncUnimplementedUnaryCall(getListExperimentsMethod(), responseObserver);
    }

    /**
     */
    public void getExperiment(dev.arbiter.v1.GetExperimentRequest request,
        io.grpc.stub.StreamObserver<dev.arbiter.v1.Experiment> responseObserver) {
      io.grpc.stub.ServerCalls.asyncUnimplementedUnaryCall(getGetExperimentMethod(), responseObserver);
    }

    /**
     * <pre>
     * Live per-variant figures, the sample-ratio check, and optional segments.
     * </pre>
     */
    public void getReport(dev.arbiter.v1.GetReportRequest request,
        io.grpc.stub.StreamObserver<dev.arbiter.v1.Report> responseObserver) {
      io.grpc.stub.ServerCalls.asyncUnimplementedUnaryCall(getGetReportMethod(), responseObserver);
    }

    /**
     * <pre>
     * New traffic weights for the serving variants; moves as few units as possible.
     * </pre>
     */
    public void setTraffic(dev.arbiter.v1.SetTrafficRequest request,
        io.grpc.stub.StreamObserver<dev.arbiter.v1.Experiment> responseObserver) {
      io.grpc.stub.ServerCalls.asyncUnimplementedUnaryCall(getSetTrafficMethod(), responseObserver);
    }

    /**
     * <pre>
     * Makes a variant the champion: it takes the control's traffic share. Audited.
     * </pre>
     */
    public void promote(dev.arbiter.v1.PromoteRequest request,
        io.grpc.stub.StreamObserver<dev.arbiter.v1.PromoteResponse> responseObserver) {
      io.grpc.stub.ServerCalls.asyncUnimplementedUnaryCall(getPromoteMethod(), responseObserver);
    }

    /**
     * <pre>
     * Sets a variant's mode ("online", "apprentice", "logging"); a new set-up version, audited
     * with the caller and the reason, in force on every server from one learned event on.
     * </pre>
     */
    public void setMode(dev.arbiter.v1.SetModeRequest request,
        io.grpc.stub.StreamObserver<dev.arbiter.v1.Experiment> responseObserver) {
      io.grpc.stub.ServerCalls.asyncUnimplementedUnaryCall(getSetModeMethod(), responseObserver);
    }

    /**
     * <pre>
     * Deletes every decision, reward, activation and learned event of a unit, then rebuilds
     * each affected experiment's models as the fold of the remaining log (on every server).
     * Idempotent per request_id; audited (never with the unit id).
     * </pre>
     */
    public void eraseUnit(dev.arbiter.v1.EraseUnitRequest request,
        io.grpc.stub.StreamObserver<dev.arbiter.v1.EraseUnitResponse> responseObserver) {
      io.grpc.stub.ServerCalls.asyncUnimplementedUnaryCall(getEraseUnitMethod(), responseObserver);
    }

    @java.lang.Override public final io.grpc.ServerServiceDefinition bindService() {
      return io.grpc.ServerServiceDefinition.builder(getServiceDescriptor())
          .addMethod(
            getListExperimentsMethod(),
            io.grpc.stub.ServerCalls.asyncUnaryCall(
              new MethodHandlers<
                dev.arbiter.v1.ListExperimentsRequest,
                dev.arbiter.v1.ListExperimentsResponse>(
                  this, METHODID_LIST_EXPERIMENTS)))
          .addMethod(
            getGetExperimentMethod(),
            io.grpc.stub.ServerCalls.asyncUnaryCall(
              new MethodHandlers<
                dev.arbiter.v1.GetExperimentRequest,
                dev.arbiter.v1.Experiment>(
                  this, METHODID_GET_EXPERIMENT)))
          .addMethod(
            getGetReportMethod(),
            io.grpc.stub.ServerCalls.asyncUnaryCall(
              new MethodHandlers<
                dev.arbiter.v1.GetReportRequest,
                dev.arbiter.v1.Report>(
                  this, METHODID_GET_REPORT)))
          .addMethod(
            getSetTrafficMethod(),
            io.grpc.stub.ServerCalls.asyncUnaryCall(
              new MethodHandlers<
                dev.arbiter.v1.SetTrafficRequest,
                dev.arbiter.v1.Experiment>(
                  this, METHODID_SET_TRAFFIC)))
          .addMethod(
            getPromoteMethod(),
            io.grpc.stub.ServerCalls.asyncUnaryCall(
              new MethodHandlers<
                dev.arbiter.v1.PromoteRequest,
                dev.arbiter.v1.PromoteResponse>(
                  this, METHODID_PROMOTE)))
          .addMethod(
            getSetModeMethod(),
            io.grpc.stub.ServerCalls.asyncUnaryCall(
              new MethodHandlers<
                dev.arbiter.v1.SetModeRequest,
                dev.arbiter.v1.Experiment>(
                  this, METHODID_SET_MODE)))
          .addMethod(
            getEraseUnitMethod(),
            io.grpc.stub.ServerCalls.asyncUnaryCall(
              new MethodHandlers<
                dev.arbiter.v1.EraseUnitRequest,
                dev.arbiter.v1.EraseUnitResponse>(
                  this, METHODID_ERASE_UNIT)))
          .build();
    }
  }

  /**
   */
  public static final class ExperimentServiceStub extends io.grpc.stub.AbstractAsyncStub<ExperimentServiceStub> {
    private ExperimentServiceStub(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      super(channel, callOptions);
    }

    @java.lang.Override
    protected ExperimentServiceStub build(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      return new ExperimentServiceStub(channel, callOptions);
    }

    /**
     */
    public void listExperiments(dev.arbiter.v1.ListExperimentsRequest request,
        io.grpc.stub.StreamObserver<dev.arbiter.v1.ListExperimentsResponse> responseObserver) {
      io.grpc.stub.ClientCalls.asyncUnaryCall(
          getChannel().newCall(getListExperimentsMethod(), getCallOptions()), request, responseObserver);
    }

    /**
     */
    public void getExperiment(dev.arbiter.v1.GetExperimentRequest request,
        io.grpc.stub.StreamObserver<dev.arbiter.v1.Experiment> responseObserver) {
      io.grpc.stub.ClientCalls.asyncUnaryCall(
          getChannel().newCall(getGetExperimentMethod(), getCallOptions()), request, responseObserver);
    }

    /**
     * <pre>
     * Live per-variant figures, the sample-ratio check, and optional segments.
     * </pre>
     */
    public void getReport(dev.arbiter.v1.GetReportRequest request,
        io.grpc.stub.StreamObserver<dev.arbiter.v1.Report> responseObserver) {
      io.grpc.stub.ClientCalls.asyncUnaryCall(
          getChannel().newCall(getGetReportMethod(), getCallOptions()), request, responseObserver);
    }

    /**
     * <pre>
     * New traffic weights for the serving variants; moves as few units as possible.
     * </pre>
     */
    public void setTraffic(dev.arbiter.v1.SetTrafficRequest request,
        io.grpc.stub.StreamObserver<dev.arbiter.v1.Experiment> responseObserver) {
      io.grpc.stub.ClientCalls.asyncUnaryCall(
          getChannel().newCall(getSetTrafficMethod(), getCallOptions()), request, responseObserver);
    }

    /**
     * <pre>
     * Makes a variant the champion: it takes the control's traffic share. Audited.
     * </pre>
     */
    public void promote(dev.arbiter.v1.PromoteRequest request,
        io.grpc.stub.StreamObserver<dev.arbiter.v1.PromoteResponse> responseObserver) {
      io.grpc.stub.ClientCalls.asyncUnaryCall(
          getChannel().newCall(getPromoteMethod(), getCallOptions()), request, responseObserver);
    }

    /**
     * <pre>
     * Sets a variant's mode ("online", "apprentice", "logging"); a new set-up version, audited
     * with the caller and the reason, in force on every server from one learned event on.
     * </pre>
     */
    public void setMode(dev.arbiter.v1.SetModeRequest request,
        io.grpc.stub.StreamObserver<dev.arbiter.v1.Experiment> responseObserver) {
      io.grpc.stub.ClientCalls.asyncUnaryCall(
          getChannel().newCall(getSetModeMethod(), getCallOptions()), request, responseObserver);
    }

    /**
     * <pre>
     * Deletes every decision, reward, activation and learned event of a unit, then rebuilds
     * each affected experiment's models as the fold of the remaining log (on every server).
     * Idempotent per request_id; audited (never with the unit id).
     * </pre>
     */
    public void eraseUnit(dev.arbiter.v1.EraseUnitRequest request,
        io.grpc.stub.StreamObserver<dev.arbiter.v1.EraseUnitResponse> responseObserver) {
      io.grpc.stub.ClientCalls.asyncUnaryCall(
          getChannel().newCall(getEraseUnitMethod(), getCallOptions()), request, responseObserver);
    }
  }

  /**
   */
  public static final class ExperimentServiceBlockingStub extends io.grpc.stub.AbstractBlockingStub<ExperimentServiceBlockingStub> {
    private ExperimentServiceBlockingStub(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      super(channel, callOptions);
    }

    @java.lang.Override
    protected ExperimentServiceBlockingStub build(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      return new ExperimentServiceBlockingStub(channel, callOptions);
    }

    /**
     */
    public dev.arbiter.v1.ListExperimentsResponse listExperiments(dev.arbiter.v1.ListExperimentsRequest request) {
      return io.grpc.stub.ClientCalls.blockingUnaryCall(
          getChannel(), getListExperimentsMethod(), getCallOptions(), request);
    }

    /**
     */
    public dev.arbiter.v1.Experiment getExperiment(dev.arbiter.v1.GetExperimentRequest request) {
      return io.grpc.stub.ClientCalls.blockingUnaryCall(
          getChannel(), getGetExperimentMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * Live per-variant figures, the sample-ratio check, and optional segments.
     * </pre>
     */
    public dev.arbiter.v1.Report getReport(dev.arbiter.v1.GetReportRequest request) {
      return io.grpc.stub.ClientCalls.blockingUnaryCall(
          getChannel(), getGetReportMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * New traffic weights for the serving variants; moves as few units as possible.
     * </pre>
     */
    public dev.arbiter.v1.Experiment setTraffic(dev.arbiter.v1.SetTrafficRequest request) {
      return io.grpc.stub.ClientCalls.blockingUnaryCall(
          getChannel(), getSetTrafficMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * Makes a variant the champion: it takes the control's traffic share. Audited.
     * </pre>
     */
    public dev.arbiter.v1.PromoteResponse promote(dev.arbiter.v1.PromoteRequest request) {
      return io.grpc.stub.ClientCalls.blockingUnaryCall(
          getChannel(), getPromoteMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * Sets a variant's mode ("online", "apprentice", "logging"); a new set-up version, audited
     * with the caller and the reason, in force on every server from one learned event on.
     * </pre>
     */
    public dev.arbiter.v1.Experiment setMode(dev.arbiter.v1.SetModeRequest request) {
      return io.grpc.stub.ClientCalls.blockingUnaryCall(
          getChannel(), getSetModeMethod(), getCallOptions(), request);
    }

    /**
     * <pre>
     * Deletes every decision, reward, activation and learned event of a unit, then rebuilds
     * each affected experiment's models as the fold of the remaining log (on every server).
     * Idempotent per request_id; audited (never with the unit id).
     * </pre>
     */
    public dev.arbiter.v1.EraseUnitResponse eraseUnit(dev.arbiter.v1.EraseUnitRequest request) {
      return io.grpc.stub.ClientCalls.blockingUnaryCall(
          getChannel(), getEraseUnitMethod(), getCallOptions(), request);
    }
  }

  /**
   */
  public static final class ExperimentServiceFutureStub extends io.grpc.stub.AbstractFutureStub<ExperimentServiceFutureStub> {
    private ExperimentServiceFutureStub(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      super(channel, callOptions);
    }

    @java.lang.Override
    protected ExperimentServiceFutureStub build(
        io.grpc.Channel channel, io.grpc.CallOptions callOptions) {
      return new ExperimentServiceFutureStub(channel, callOptions);
    }

    /**
     */
    public com.google.common.util.concurrent.ListenableFuture<dev.arbiter.v1.ListExperimentsResponse> listExperiments(
        dev.arbiter.v1.ListExperimentsRequest request) {
      return io.grpc.stub.ClientCalls.futureUnaryCall(
          getChannel().newCall(getListExperimentsMethod(), getCallOptions()), request);
    }

    /**
     */
    public com.google.common.util.concurrent.ListenableFuture<dev.arbiter.v1.Experiment> getExperiment(
        dev.arbiter.v1.GetExperimentRequest request) {
      return io.grpc.stub.ClientCalls.futureUnaryCall(
          getChannel().newCall(getGetExperimentMethod(), getCallOptions()), request);
    }

    /**
     * <pre>
     * Live per-variant figures, the sample-ratio check, and optional segments.
     * </pre>
     */
    public com.google.common.util.concurrent.ListenableFuture<dev.arbiter.v1.Report> getReport(
        dev.arbiter.v1.GetReportRequest request) {
      return io.grpc.stub.ClientCalls.futureUnaryCall(
          getChannel().newCall(getGetReportMethod(), getCallOptions()), request);
    }

    /**
     * <pre>
     * New traffic weights for the serving variants; moves as few units as possible.
     * </pre>
     */
    public com.google.common.util.concurrent.ListenableFuture<dev.arbiter.v1.Experiment> setTraffic(
        dev.arbiter.v1.SetTrafficRequest request) {
      return io.grpc.stub.ClientCalls.futureUnaryCall(
          getChannel().newCall(getSetTrafficMethod(), getCallOptions()), request);
    }

    /**
     * <pre>
     * Makes a variant the champion: it takes the control's traffic share. Audited.
     * </pre>
     */
    public com.google.common.util.concurrent.ListenableFuture<dev.arbiter.v1.PromoteResponse> promote(
        dev.arbiter.v1.PromoteRequest request) {
      return io.grpc.stub.ClientCalls.futureUnaryCall(
          getChannel().newCall(getPromoteMethod(), getCallOptions()), request);
    }

    /**
     * <pre>
     * Sets a variant's mode ("online", "apprentice", "logging"); a new set-up version, audited
     * with the caller and the reason, in force on every server from one learned event on.
     * </pre>
     */
    public com.google.common.util.concurrent.ListenableFuture<dev.arbiter.v1.Experiment> setMode(
        dev.arbiter.v1.SetModeRequest request) {
      return io.grpc.stub.ClientCalls.futureUnaryCall(
          getChannel().newCall(getSetModeMethod(), getCallOptions()), request);
    }

    /**
     * <pre>
     * Deletes every decision, reward, activation and learned event of a unit, then rebuilds
     * each affected experiment's models as the fold of the remaining log (on every server).
     * Idempotent per request_id; audited (never with the unit id).
     * </pre>
     */
    public com.google.common.util.concurrent.ListenableFuture<dev.arbiter.v1.EraseUnitResponse> eraseUnit(
        dev.arbiter.v1.EraseUnitRequest request) {
      return io.grpc.stub.ClientCalls.futureUnaryCall(
          getChannel().newCall(getEraseUnitMethod(), getCallOptions()), request);
    }
  }

  private static final int METHODID_LIST_EXPERIMENTS = 0;
  private static final int METHODID_GET_EXPERIMENT = 1;
  private static final int METHODID_GET_REPORT = 2;
  private static final int METHODID_SET_TRAFFIC = 3;
  private static final int METHODID_PROMOTE = 4;
  private static final int METHODID_SET_MODE = 5;
  private static final int METHODID_ERASE_UNIT = 6;

  private static final class MethodHandlers<Req, Resp> implements
      io.grpc.stub.ServerCalls.UnaryMethod<Req, Resp>,
      io.grpc.stub.ServerCalls.ServerStreamingMethod<Req, Resp>,
      io.grpc.stub.ServerCalls.ClientStreamingMethod<Req, Resp>,
      io.grpc.stub.ServerCalls.BidiStreamingMethod<Req, Resp> {
    private final ExperimentServiceImplBase serviceImpl;
    private final int methodId;

    MethodHandlers(ExperimentServiceImplBase serviceImpl, int methodId) {
      this.serviceImpl = serviceImpl;
      this.methodId = methodId;
    }

    @java.lang.Override
    @java.lang.SuppressWarnings("unchecked")
    public void invoke(Req request, io.grpc.stub.StreamObserver<Resp> responseObserver) {
      switch (methodId) {
        case METHODID_LIST_EXPERIMENTS:
          serviceImpl.listExperiments((dev.arbiter.v1.ListExperimentsRequest) request,
              (io.grpc.stub.StreamObserver<dev.arbiter.v1.ListExperimentsResponse>) responseObserver);
          break;
        case METHODID_GET_EXPERIMENT:
          serviceImpl.getExperiment((dev.arbiter.v1.GetExperimentRequest) request,
              (io.grpc.stub.StreamObserver<dev.arbiter.v1.Experiment>) responseObserver);
          break;
        case METHODID_GET_REPORT:
          serviceImpl.getReport((dev.arbiter.v1.GetReportRequest) request,
              (io.grpc.stub.StreamObserver<dev.arbiter.v1.Report>) responseObserver);
          break;
        case METHODID_SET_TRAFFIC:
          serviceImpl.setTraffic((dev.arbiter.v1.SetTrafficRequest) request,
              (io.grpc.stub.StreamObserver<dev.arbiter.v1.Experiment>) responseObserver);
          break;
        case METHODID_PROMOTE:
          serviceImpl.promote((dev.arbiter.v1.PromoteRequest) request,
              (io.grpc.stub.StreamObserver<dev.arbiter.v1.PromoteResponse>) responseObserver);
          break;
        case METHODID_SET_MODE:
          serviceImpl.setMode((dev.arbiter.v1.SetModeRequest) request,
              (io.grpc.stub.StreamObserver<dev.arbiter.v1.Experiment>) responseObserver);
          break;
        case METHODID_ERASE_UNIT:
          serviceImpl.eraseUnit((dev.arbiter.v1.EraseUnitRequest) request,
              (io.grpc.stub.StreamObserver<dev.arbiter.v1.EraseUnitResponse>) responseObserver);
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

  private static abstract class ExperimentServiceBaseDescriptorSupplier
      implements io.grpc.protobuf.ProtoFileDescriptorSupplier, io.grpc.protobuf.ProtoServiceDescriptorSupplier {
    ExperimentServiceBaseDescriptorSupplier() {}

    @java.lang.Override
    public com.google.protobuf.Descriptors.FileDescriptor getFileDescriptor() {
      return dev.arbiter.v1.ExperimentsProto.getDescriptor();
    }

    @java.lang.Override
    public com.google.protobuf.Descriptors.ServiceDescriptor getServiceDescriptor() {
      return getFileDescriptor().findServiceByName("ExperimentService");
    }
  }

  private static final class ExperimentServiceFileDescriptorSupplier
      extends ExperimentServiceBaseDescriptorSupplier {
    ExperimentServiceFileDescriptorSupplier() {}
  }

  private static final class ExperimentServiceMethodDescriptorSupplier
      extends ExperimentServiceBaseDescriptorSupplier
      implements io.grpc.protobuf.ProtoMethodDescriptorSupplier {
    private final String methodName;

    ExperimentServiceMethodDescriptorSupplier(String methodName) {
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
      synchronized (ExperimentServiceGrpc.class) {
        result = serviceDescriptor;
        if (result == null) {
          serviceDescriptor = result = io.grpc.ServiceDescriptor.newBuilder(SERVICE_NAME)
              .setSchemaDescriptor(new ExperimentServiceFileDescriptorSupplier())
              .addMethod(getListExperimentsMethod())
              .addMethod(getGetExperimentMethod())
              .addMethod(getGetReportMethod())
              .addMethod(getSetTrafficMethod())
              .addMethod(getPromoteMethod())
              .addMethod(getSetModeMethod())
              .addMethod(getEraseUnitMethod())
              .build();
        }
      }
    }
    return result;
  }
}
