/**
 * Typed promise client for the Arbiter decision engine over `@grpc/grpc-js`.
 *
 * ```ts
 * const client = new DecisionClient("127.0.0.1:50051");
 * const decision = await client.choose({
 *   experiment: "homepage",
 *   unitId: "user-42",
 *   context: [{ name: "user", numbers: { age: 31 } }],
 *   actions: [{ id: "hero-a" }, { id: "hero-b" }],
 * });
 * const { learned } = await client.reward(decision.eventId, 1.0);
 * // Many decisions in one call: one result per choice, in order.
 * const results = await client.chooseBatch([choiceA, choiceB]);
 * for (const r of results) if (r.ok) use(r.decision); else console.warn(r.code, r.message);
 * client.close();
 * ```
 *
 * A server with TLS and tokens: `new DecisionClient(target, { token, tls: { caFile, certFile,
 * keyFile } })` (the files are PEM; `certFile` and `keyFile` only for a server that asks for a
 * client certificate).
 *
 * Failed calls reject with the gRPC `ServiceError`: `err.code` is `Status.INVALID_ARGUMENT` for a
 * bad request, `Status.NOT_FOUND` for an unknown experiment or event, `Status.ALREADY_EXISTS` for
 * a second reward of one event, `Status.UNAUTHENTICATED` without a known token,
 * `Status.PERMISSION_DENIED` for a token without the method's role.
 */
import { readFileSync } from "node:fs";

import {
  type CallOptions,
  type ChannelCredentials,
  type ClientOptions,
  credentials,
  Metadata,
  type ServiceError,
  status,
} from "@grpc/grpc-js";

import {
  type ActivateResponse,
  type ChooseBatchResponse,
  type ChooseResponse,
  type RewardResponse,
  DecisionServiceClient,
  ChooseBatchRequest,
  ChooseRequest,
  RewardRequest,
  ActivateRequest,
} from "./gen/protos/arbiter/v1/decision";

export * as v1 from "./gen/protos/arbiter/v1/decision";
export { status as Status, type ServiceError };

/** A group of features, like a Vowpal Wabbit namespace; a category is one-hot (`name=value`). */
export interface Features {
  name: string;
  numbers?: Record<string, number>;
  categories?: Record<string, string>;
}

/** A candidate action (item, offer, layout) and its own features. */
export interface ActionInput {
  id: string;
  features?: Features[];
}

/** What `choose` asks: which of `actions` for this `context`? */
export interface Choice {
  experiment: string;
  /** Optional; empty gets a fresh UUID from the server. Supplying one makes Choose idempotent. */
  eventId?: string;
  /** The user or session; assignment to variants is sticky per unit. */
  unitId?: string;
  context?: Features[];
  actions: ActionInput[];
  /** A decision that may never be shown: not learned until `activate` is called. */
  deferred?: boolean;
  /** Offered actions that must not be chosen: probability 0 (logged, never drawn). */
  excludedActionIds?: string[];
  /** Answer with `explanations` of the scores (empty from a policy that cannot explain itself). */
  explain?: boolean;
}

/** One feature's part of an action's score (`namespace.name`, `namespace.name=value`, or
 * `exploration` for the exploration part of a UCB/TS score). */
export interface Contribution {
  feature: string;
  contribution: number;
}

/** Why `actionId` scored `score`: its largest contributions by magnitude. */
export interface Explanation {
  actionId: string;
  score: number;
  contributions: Contribution[];
}

/** One action of the distribution a decision was drawn from. */
export interface Ranked {
  actionId: string;
  probability: number;
}

/** What `choose` answers. */
export interface Decision {
  eventId: string;
  actionId: string;
  /** The exact probability with which `actionId` was drawn, in (0, 1]. */
  probability: number;
  /** The full distribution: the chosen action first, then by decreasing probability. */
  ranking: Ranked[];
  variant: string;
  modelVersion: string;
  /** With `explain`: one per scored action, from the serving model; else empty. */
  explanations: Explanation[];
}

/**
 * One result of `chooseBatch`, in the order of the choices: the decision, or the gRPC status
 * (`code`, `message` naming the field) that `choose` would have rejected that choice with.
 */
export type BatchResult =
  | { ok: true; decision: Decision }
  | { ok: false; code: status; message: string };

/** What `reward` answers. */
export interface RewardResult {
  /** True when the policy learns from it (now or when the window closes); false when stored only. */
  learned: boolean;
}

/** TLS files (PEM). Without `caFile` the system's root certificates verify the server. */
export interface TlsOptions {
  caFile?: string;
  /** A client certificate and its key, for a server that requires one (mTLS). */
  certFile?: string;
  keyFile?: string;
}

export interface DecisionClientOptions {
  /** Sent with every call as `authorization: Bearer <token>` metadata. */
  token?: string;
  /** Connect with TLS (`true`: verified with the system's root certificates). */
  tls?: TlsOptions | boolean;
  /** Channel credentials; overrides `tls`. Plaintext (`credentials.createInsecure()`) by default. */
  credentials?: ChannelCredentials;
  /** Options for the underlying grpc-js channel. */
  channelOptions?: Partial<ClientOptions>;
  /** Deadline of each call in milliseconds unless a call says otherwise; 10 s by default. */
  timeoutMs?: number;
}

export interface CallSettings {
  timeoutMs?: number;
  metadata?: Metadata;
}

export interface RewardSettings extends CallSettings {
  /** Idempotency key: a retried Reward with the same (eventId, rewardId) is stored once. */
  rewardId?: string;
}

/** Calls DecisionService with promises. One instance shares one HTTP/2 channel; reuse it. */
export class DecisionClient {
  private readonly rpc: DecisionServiceClient;
  private readonly timeoutMs: number;
  private readonly authorization: string | undefined;

  constructor(target: string, options: DecisionClientOptions = {}) {
    if (options.token !== undefined && (!options.token || options.token.trim() !== options.token)) {
      throw new TypeError("token must be non-empty, without surrounding whitespace");
    }
    this.rpc = new DecisionServiceClient(
      target,
      options.credentials ?? channelCredentials(options.tls),
      options.channelOptions,
    );
    this.timeoutMs = options.timeoutMs ?? 10_000;
    this.authorization = options.token ? `Bearer ${options.token}` : undefined;
  }

  /** Picks one of the offered actions; the server logs the decision before answering. */
  async choose(choice: Choice, settings: CallSettings = {}): Promise<Decision> {
    const response = await this.unary<ChooseRequest, ChooseResponse>(
      (req, md, opts, cb) => this.rpc.choose(req, md, opts, cb),
      toChooseRequest(choice),
      settings,
    );
    return toDecision(response);
  }

  /**
   * Many decisions in one call (ChooseBatch; the server caps the count, `--max-batch`, default
   * 1000). Each is decided, logged and rewardable exactly as with `choose`; a choice the server
   * refuses fails alone, as a `{ ok: false, code, message }` result. The promise itself rejects
   * only when the call as a whole fails (too many choices, UNAVAILABLE, ...).
   */
  async chooseBatch(choices: Choice[], settings: CallSettings = {}): Promise<BatchResult[]> {
    const response = await this.unary<ChooseBatchRequest, ChooseBatchResponse>(
      (req, md, opts, cb) => this.rpc.chooseBatch(req, md, opts, cb),
      ChooseBatchRequest.fromPartial({ requests: choices.map(toChooseRequest) }),
      settings,
    );
    return response.results.map((r): BatchResult =>
      r.code === 0 && r.response
        ? { ok: true, decision: toDecision(r.response) }
        : { ok: false, code: r.code as status, message: r.message },
    );
  }

  /**
   * Joins `value` to the decision `eventId`; rejects with ALREADY_EXISTS for a second reward.
   * `rewardId` is an idempotency key: a retried call with the same (eventId, rewardId) is stored once.
   */
  async reward(eventId: string, value: number, settings: RewardSettings = {}): Promise<RewardResult> {
    if (!eventId) {
      throw new TypeError("reward needs the event id of a decision");
    }
    const response = await this.unary<RewardRequest, RewardResponse>(
      (req, md, opts, cb) => this.rpc.reward(req, md, opts, cb),
      RewardRequest.fromPartial({ eventId, value, rewardId: settings.rewardId ?? "" }),
      settings,
    );
    return { learned: response.learned };
  }

  /** Starts the reward window of a deferred decision that was actually shown. */
  async activate(eventId: string, settings: CallSettings = {}): Promise<void> {
    await this.unary<ActivateRequest, ActivateResponse>(
      (req, md, opts, cb) => this.rpc.activate(req, md, opts, cb),
      ActivateRequest.fromPartial({ eventId }),
      settings,
    );
  }

  /** Closes the channel. */
  close(): void {
    this.rpc.close();
  }

  private unary<Req, Res>(
    call: (
      request: Req,
      metadata: Metadata,
      options: Partial<CallOptions>,
      callback: (error: ServiceError | null, response: Res) => void,
    ) => unknown,
    request: Req,
    settings: CallSettings,
  ): Promise<Res> {
    const deadline = new Date(Date.now() + (settings.timeoutMs ?? this.timeoutMs));
    const metadata = settings.metadata ? settings.metadata.clone() : new Metadata();
    if (this.authorization && metadata.get("authorization").length === 0) {
      metadata.set("authorization", this.authorization);
    }
    return new Promise<Res>((resolve, reject) => {
      call(request, metadata, { deadline }, (error, response) =>
        error ? reject(error) : resolve(response),
      );
    });
  }
}

/** Plaintext without `tls`; else TLS with the given CA and client certificate files. */
export function channelCredentials(tls?: TlsOptions | boolean): ChannelCredentials {
  if (!tls) return credentials.createInsecure();
  const files = tls === true ? {} : tls;
  if (Boolean(files.certFile) !== Boolean(files.keyFile)) {
    throw new TypeError("tls.certFile and tls.keyFile go together (a client certificate and its key)");
  }
  const read = (path?: string) => (path ? readFileSync(path) : null);
  return credentials.createSsl(read(files.caFile), read(files.keyFile), read(files.certFile));
}

function toChooseRequest(choice: Choice): ChooseRequest {
  return ChooseRequest.fromPartial({
    experiment: choice.experiment,
    eventId: choice.eventId ?? "",
    unitId: choice.unitId ?? "",
    context: (choice.context ?? []).map(toNamespace),
    actions: choice.actions.map((a) => ({ id: a.id, features: (a.features ?? []).map(toNamespace) })),
    deferred: choice.deferred ?? false,
    excludedActionIds: choice.excludedActionIds ?? [],
    explain: choice.explain ?? false,
  });
}

function toNamespace(f: Features) {
  return { name: f.name, numbers: f.numbers ?? {}, categories: f.categories ?? {} };
}

function toDecision(r: ChooseResponse): Decision {
  return {
    eventId: r.eventId,
    actionId: r.actionId,
    probability: r.probability,
    ranking: r.ranking.map((x) => ({ actionId: x.actionId, probability: x.probability })),
    variant: r.variant,
    modelVersion: r.modelVersion,
    explanations: r.explanations.map((e) => ({
      actionId: e.actionId,
      score: e.score,
      contributions: e.contributions.map((c) => ({ feature: c.feature, contribution: c.contribution })),
    })),
  };
}

/** True when `err` is a gRPC error with status `code` (e.g. `Status.ALREADY_EXISTS`). */
export function hasStatus(err: unknown, code: status): boolean {
  return typeof err === "object" && err !== null && (err as { code?: unknown }).code === code;
}
