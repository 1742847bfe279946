// Package arbiter is a small typed client for the Arbiter decision engine.
//
//	c, err := arbiter.Dial("127.0.0.1:50051")
//	d, err := c.Choose(ctx, arbiter.Choice{
//		Experiment: "homepage",
//		UnitID:     "user-42",
//		Context:    []*arbiterv1.Namespace{arbiter.Features("user", map[string]float64{"age": 31}, nil)},
//		Actions:    []*arbiterv1.Action{arbiter.NewAction("hero-a"), arbiter.NewAction("hero-b")},
//	})
//	learned, err := c.Reward(ctx, d.EventID, 1.0)
//
// Many decisions in one call (one result per choice, in order; a refused one fails alone):
//
//	results, err := c.ChooseBatch(ctx, []arbiter.Choice{a, b})
//	for _, r := range results {
//		if r.Err != nil { /* status.Code(r.Err), the message names the field */ }
//	}
//
// A server with TLS and tokens:
//
//	c, err := arbiter.Connect("arbiter.internal:50051", arbiter.Options{
//		CAFile: "ca.pem", CertFile: "client.pem", KeyFile: "client-key.pem", Token: token,
//	})
//
// Errors are gRPC status errors: status.Code(err) is codes.InvalidArgument for a bad request,
// codes.NotFound for an unknown experiment or event, codes.AlreadyExists for a second reward,
// codes.Unauthenticated without a known token, codes.PermissionDenied for a token without the
// method's role.
package arbiter

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	arbiterv1 "github.com/arbiter/arbiter/clients/go/arbiterv1"
)

// Client calls DecisionService. It is safe for concurrent use.
type Client struct {
	conn *grpc.ClientConn // nil when built by New over a caller's connection
	rpc  arbiterv1.DecisionServiceClient
}

// Dial connects to an Arbiter server at target ("host:port"). Without options the connection
// is plaintext (WithInsecure); pass grpc.WithTransportCredentials(...) for TLS.
func Dial(target string, opts ...grpc.DialOption) (*Client, error) {
	if len(opts) == 0 {
		opts = []grpc.DialOption{grpc.WithInsecure()}
	}
	conn, err := grpc.Dial(target, opts...)
	if err != nil {
		return nil, err
	}
	return &Client{conn: conn, rpc: arbiterv1.NewDecisionServiceClient(conn)}, nil
}

// Options say how Connect reaches a server: TLS and a bearer token.
type Options struct {
	// TLS turns TLS on (CAFile or CertFile imply it); without CAFile the system's root
	// certificates verify the server.
	TLS    bool
	CAFile string
	// CertFile and KeyFile (PEM, together) present a client certificate, for a server that
	// requires one (mTLS).
	CertFile string
	KeyFile  string
	// Token goes with every call as "authorization: Bearer <token>" metadata.
	Token string
}

// Connect connects to target as opts say (plaintext without TLS); extra dial options follow.
func Connect(target string, opts Options, extra ...grpc.DialOption) (*Client, error) {
	dial, err := opts.DialOptions()
	if err != nil {
		return nil, err
	}
	return Dial(target, append(dial, extra...)...)
}

// DialOptions are the transport credentials and per-call token of opts, for grpc.Dial.
func (o Options) DialOptions() ([]grpc.DialOption, error) {
	secure := o.TLS || o.CAFile != "" || o.CertFile != ""
	var out []grpc.DialOption
	if secure {
		config := &tls.Config{MinVersion: tls.VersionTLS12}
		if o.CAFile != "" {
			pem, err := os.ReadFile(o.CAFile)
			if err != nil {
				return nil, fmt.Errorf("arbiter: CA file: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("arbiter: CA file %s holds no PEM certificate", o.CAFile)
			}
			config.RootCAs = pool
		}
		if (o.CertFile == "") != (o.KeyFile == "") {
			return nil, errors.New("arbiter: CertFile and KeyFile go together (a client certificate and its key)")
		}
		if o.CertFile != "" {
			pair, err := tls.LoadX509KeyPair(o.CertFile, o.KeyFile)
			if err != nil {
				return nil, fmt.Errorf("arbiter: client certificate: %w", err)
			}
			config.Certificates = []tls.Certificate{pair}
		}
		out = append(out, grpc.WithTransportCredentials(credentials.NewTLS(config)))
	} else {
		out = append(out, grpc.WithInsecure())
	}
	if o.Token != "" {
		out = append(out, grpc.WithPerRPCCredentials(bearer{token: o.Token, secure: secure}))
	}
	return out, nil
}

// bearer sends the token with every call. Over TLS it refuses to go out in plaintext.
type bearer struct {
	token  string
	secure bool
}

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + b.token}, nil
}

func (b bearer) RequireTransportSecurity() bool { return b.secure }

// New wraps a connection the caller owns (and closes).
func New(conn grpc.ClientConnInterface) *Client {
	return &Client{rpc: arbiterv1.NewDecisionServiceClient(conn)}
}

// Close closes the connection Dial opened; it does nothing for a Client made by New.
func (c *Client) Close() error {
	if c.conn == nil {
		return nil
	}
	return c.conn.Close()
}

// Choice is what Choose asks: which of Actions for this Context?
type Choice struct {
	Experiment string
	// EventID is optional; empty gets a fresh UUID from the server. Supplying one makes
	// Choose idempotent.
	EventID string
	// UnitID is the user or session; assignment to variants is sticky per unit.
	UnitID  string
	Context []*arbiterv1.Namespace
	Actions []*arbiterv1.Action
	// Deferred decisions are not learned until Activate is called.
	Deferred bool
	// ExcludedActionIDs are offered actions that must not be chosen: probability 0.
	ExcludedActionIDs []string
	// Explain asks for Decision.Explanations (none from a policy that cannot explain itself).
	Explain bool
}

func (choice Choice) request() *arbiterv1.ChooseRequest {
	return &arbiterv1.ChooseRequest{
		Experiment:        choice.Experiment,
		EventId:           choice.EventID,
		UnitId:            choice.UnitID,
		Context:           choice.Context,
		Actions:           choice.Actions,
		Deferred:          choice.Deferred,
		ExcludedActionIds: choice.ExcludedActionIDs,
		Explain:           choice.Explain,
	}
}

// Contribution is one feature's part of an action's score: Feature is "namespace.name",
// "namespace.name=value", or "exploration" for the exploration part of a UCB/TS score.
type Contribution struct {
	Feature      string
	Contribution float64
}

// Explanation says why ActionID scored Score: its largest contributions by magnitude.
type Explanation struct {
	ActionID      string
	Score         float64
	Contributions []Contribution
}

// Ranked is one action of the distribution a decision was drawn from.
type Ranked struct {
	ActionID    string
	Probability float64
}

// Decision is what Choose answers.
type Decision struct {
	EventID  string
	ActionID string
	// Probability is the exact probability with which ActionID was drawn, in (0, 1].
	Probability float64
	// Ranking is the full distribution: the chosen action first, then by decreasing probability.
	Ranking      []Ranked
	Variant      string
	ModelVersion string
	// Explanations (with Choice.Explain): one per scored action, from the serving model.
	Explanations []Explanation
}

// Choose picks one of the offered actions; the server logs the decision before answering.
func (c *Client) Choose(ctx context.Context, choice Choice, opts ...grpc.CallOption) (*Decision, error) {
	resp, err := c.rpc.Choose(ctx, choice.request(), opts...)
	if err != nil {
		return nil, err
	}
	return decisionFrom(resp), nil
}

// BatchResult is one result of ChooseBatch: the Decision, or Err, the gRPC status error
// (status.Code(Err), a message naming the field) that Choose would have returned for it.
type BatchResult struct {
	Decision *Decision
	Err      error
}

// ChooseBatch makes many decisions in one call (the server caps the count, --max-batch, default
// 1000). Each is decided, logged and rewardable exactly as with Choose; a choice the server
// refuses fails alone, in its BatchResult. err is non-nil only when the call as a whole fails.
func (c *Client) ChooseBatch(ctx context.Context, choices []Choice, opts ...grpc.CallOption) ([]BatchResult, error) {
	req := &arbiterv1.ChooseBatchRequest{Requests: make([]*arbiterv1.ChooseRequest, len(choices))}
	for i, choice := range choices {
		req.Requests[i] = choice.request()
	}
	resp, err := c.rpc.ChooseBatch(ctx, req, opts...)
	if err != nil {
		return nil, err
	}
	results := make([]BatchResult, len(resp.GetResults()))
	for i, r := range resp.GetResults() {
		if r.GetCode() == 0 {
			results[i].Decision = decisionFrom(r.GetResponse())
		} else {
			results[i].Err = status.Error(codes.Code(r.GetCode()), r.GetMessage())
		}
	}
	return results, nil
}

func decisionFrom(resp *arbiterv1.ChooseResponse) *Decision {
	d := &Decision{
		EventID:      resp.GetEventId(),
		ActionID:     resp.GetActionId(),
		Probability:  resp.GetProbability(),
		Ranking:      make([]Ranked, 0, len(resp.GetRanking())),
		Variant:      resp.GetVariant(),
		ModelVersion: resp.GetModelVersion(),
	}
	for _, r := range resp.GetRanking() {
		d.Ranking = append(d.Ranking, Ranked{ActionID: r.GetActionId(), Probability: r.GetProbability()})
	}
	for _, e := range resp.GetExplanations() {
		explanation := Explanation{ActionID: e.GetActionId(), Score: e.GetScore(),
			Contributions: make([]Contribution, 0, len(e.GetContributions()))}
		for _, c := range e.GetContributions() {
			explanation.Contributions = append(explanation.Contributions,
				Contribution{Feature: c.GetFeature(), Contribution: c.GetContribution()})
		}
		d.Explanations = append(d.Explanations, explanation)
	}
	return d
}

// Reward joins value to the decision eventID. learned is true when the policy learns from it
// (now or when the reward window closes), false when it was stored for evaluation only.
func (c *Client) Reward(ctx context.Context, eventID string, value float64, opts ...grpc.CallOption) (learned bool, err error) {
	return c.RewardWithID(ctx, eventID, "", value, opts...)
}

// RewardWithID is Reward with an idempotency key: a retried call with the same (eventID,
// rewardID) is stored once, so it is safe to retry after a timeout.
func (c *Client) RewardWithID(ctx context.Context, eventID, rewardID string, value float64, opts ...grpc.CallOption) (learned bool, err error) {
	if eventID == "" {
		return false, errors.New("arbiter: Reward needs the event id of a decision")
	}
	resp, err := c.rpc.Reward(ctx, &arbiterv1.RewardRequest{EventId: eventID, Value: value, RewardId: rewardID}, opts...)
	if err != nil {
		return false, err
	}
	return resp.GetLearned(), nil
}

// Activate starts the reward window of a deferred decision that was actually shown.
func (c *Client) Activate(ctx context.Context, eventID string, opts ...grpc.CallOption) error {
	_, err := c.rpc.Activate(ctx, &arbiterv1.ActivateRequest{EventId: eventID}, opts...)
	return err
}

// Features builds a namespace of numeric and categorical (one-hot) features; either map may be nil.
func Features(name string, numbers map[string]float64, categories map[string]string) *arbiterv1.Namespace {
	return &arbiterv1.Namespace{Name: name, Numbers: numbers, Categories: categories}
}

// NewAction builds an action with its own features.
func NewAction(id string, features ...*arbiterv1.Namespace) *arbiterv1.Action {
	return &arbiterv1.Action{Id: id, Features: features}
}
