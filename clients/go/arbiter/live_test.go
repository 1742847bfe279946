package arbiter

import (
	"context"
	"fmt"
	"math"
	"os"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	arbiterv1 "github.com/arbiter/arbiter/clients/go/arbiterv1"
)

// TestLiveServer checks the client against a real server at $ARBITER_TARGET (experiment
// $ARBITER_EXPERIMENT, default "homepage"). tests/clients_live starts one and runs this; for a
// server with TLS and tokens also with ARBITER_TLS_CA (ARBITER_TLS_CERT, ARBITER_TLS_KEY for
// mTLS) and ARBITER_TOKEN.
func TestLiveServer(t *testing.T) {
	target := os.Getenv("ARBITER_TARGET")
	if target == "" {
		t.Skip("ARBITER_TARGET is not set: start `arbiter serve` and set ARBITER_TARGET=host:port")
	}
	experiment := os.Getenv("ARBITER_EXPERIMENT")
	if experiment == "" {
		experiment = "homepage"
	}
	opts := Options{CAFile: os.Getenv("ARBITER_TLS_CA"), CertFile: os.Getenv("ARBITER_TLS_CERT"),
		KeyFile: os.Getenv("ARBITER_TLS_KEY"), Token: os.Getenv("ARBITER_TOKEN")}
	c, err := Connect(target, opts)
	if err != nil {
		t.Fatalf("dial %s: %v", target, err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	offered := []string{"hero-a", "hero-b", "hero-c"}
	choice := Choice{
		Experiment: experiment,
		UnitID:     "go-client-user",
		Context:    []*arbiterv1.Namespace{Features("user", map[string]float64{"age": 31}, map[string]string{"lang": "go"})},
	}
	for i, id := range offered {
		choice.Actions = append(choice.Actions, NewAction(id, Features("item", map[string]float64{"rank": float64(i)}, nil)))
	}

	var decision *Decision
	if !t.Run("ChooseReturnsAValidDecision", func(t *testing.T) {
		decision, err = c.Choose(ctx, choice)
		if err != nil {
			t.Fatalf("Choose: %v", err)
		}
		if problem := invalidDecision(decision, offered); problem != "" {
			t.Fatalf("invalid decision %+v: %s", decision, problem)
		}
	}) {
		t.FailNow()
	}

	t.Run("RewardOnThatEventSucceeds", func(t *testing.T) {
		if _, err := c.Reward(ctx, decision.EventID, 1.0); err != nil {
			t.Fatalf("Reward(%s): %v", decision.EventID, err)
		}
	})

	// A different value: a repeat of the stored value may count as an idempotent retry.
	t.Run("SecondRewardIsAlreadyExists", func(t *testing.T) {
		_, err := c.Reward(ctx, decision.EventID, 0.0)
		if status.Code(err) != codes.AlreadyExists {
			t.Fatalf("second Reward(%s): got %v (code %s), want ALREADY_EXISTS", decision.EventID, err, status.Code(err))
		}
	})

	t.Run("WithoutTheTokenIsUnauthenticated", func(t *testing.T) {
		if opts.Token == "" {
			t.Skip("no ARBITER_TOKEN")
		}
		anonymous := opts
		anonymous.Token = ""
		a, err := Connect(target, anonymous)
		if err != nil {
			t.Fatalf("connect: %v", err)
		}
		defer a.Close()
		_, err = a.Choose(ctx, choice)
		if status.Code(err) != codes.Unauthenticated {
			t.Fatalf("Choose without a token: got %v (code %s), want UNAUTHENTICATED", err, status.Code(err))
		}
	})

	t.Run("PlaintextAgainstTLSIsUnavailableAtOnce", func(t *testing.T) {
		if opts.CAFile == "" {
			t.Skip("no ARBITER_TLS_CA")
		}
		p, err := Dial(target)
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		defer p.Close()
		began := time.Now()
		short, done := context.WithTimeout(ctx, 20*time.Second)
		defer done()
		_, err = p.Choose(short, choice)
		if status.Code(err) != codes.Unavailable {
			t.Fatalf("plaintext Choose: got %v (code %s), want UNAVAILABLE", err, status.Code(err))
		}
		if took := time.Since(began); took > 10*time.Second {
			t.Fatalf("plaintext Choose took %s", took)
		}
	})

	t.Run("ChooseBatchDecidesEachAndABadOneFailsAlone", func(t *testing.T) {
		bad := choice
		bad.Actions = nil
		results, err := c.ChooseBatch(ctx, []Choice{choice, bad, choice})
		if err != nil {
			t.Fatalf("ChooseBatch: %v", err)
		}
		if len(results) != 3 || results[0].Err != nil || results[2].Err != nil {
			t.Fatalf("want two decisions around a failure, got %+v", results)
		}
		for _, r := range []BatchResult{results[0], results[2]} {
			if problem := invalidDecision(r.Decision, offered); problem != "" {
				t.Fatalf("invalid decision %+v: %s", r.Decision, problem)
			}
		}
		if results[0].Decision.EventID == results[2].Decision.EventID {
			t.Fatalf("two decisions share the event id %s", results[0].Decision.EventID)
		}
		if status.Code(results[1].Err) != codes.InvalidArgument || !strings.Contains(results[1].Err.Error(), "`actions`") {
			t.Fatalf("the choice without actions: got %v, want INVALID_ARGUMENT naming actions", results[1].Err)
		}
		if _, err := c.Reward(ctx, results[0].Decision.EventID, 1.0); err != nil {
			t.Fatalf("Reward of a batch decision: %v", err)
		}
	})

	t.Run("AnExcludedActionIsNeverChosen", func(t *testing.T) {
		excluding := choice
		excluding.ExcludedActionIDs = []string{"hero-b"}
		choices := make([]Choice, 20)
		for i := range choices {
			choices[i] = excluding
		}
		results, err := c.ChooseBatch(ctx, choices)
		if err != nil {
			t.Fatalf("ChooseBatch: %v", err)
		}
		for _, r := range results {
			if r.Err != nil || r.Decision.ActionID == "hero-b" {
				t.Fatalf("want a decision other than hero-b, got %+v", r)
			}
			for _, x := range r.Decision.Ranking {
				if x.ActionID == "hero-b" && x.Probability != 0 {
					t.Fatalf("hero-b has probability %v, want 0", x.Probability)
				}
			}
		}
	})

	t.Run("ChooseWithExplainAnswersAnExplanationPerAction", func(t *testing.T) {
		plain, err := c.Choose(ctx, choice)
		if err != nil || len(plain.Explanations) != 0 {
			t.Fatalf("Choose without Explain: err %v, explanations %+v", err, plain)
		}
		explaining := choice
		explaining.Explain = true
		d, err := c.Choose(ctx, explaining)
		if err != nil {
			t.Fatalf("Choose with Explain: %v", err)
		}
		if len(d.Explanations) != len(offered) {
			t.Fatalf("want one explanation per offered action, got %+v", d.Explanations)
		}
		for i, e := range d.Explanations {
			n := len(e.Contributions)
			if e.ActionID != offered[i] || n == 0 || e.Contributions[n-1].Feature != "exploration" ||
				math.IsNaN(e.Score) || math.IsInf(e.Score, 0) {
				t.Fatalf("explanation %d: %+v (want %s, LinUCB's exploration last)", i, e, offered[i])
			}
		}
	})

	t.Run("ChooseWithoutActionsIsInvalidArgument", func(t *testing.T) {
		_, err := c.Choose(ctx, Choice{Experiment: experiment, UnitID: "go-client-user"})
		if status.Code(err) != codes.InvalidArgument {
			t.Fatalf("Choose without actions: got %v (code %s), want INVALID_ARGUMENT", err, status.Code(err))
		}
	})
}

// invalidDecision says what is wrong with d, or "" when it is a valid decision over offered.
func invalidDecision(d *Decision, offered []string) string {
	isOffered := map[string]bool{}
	for _, id := range offered {
		isOffered[id] = true
	}
	if d.EventID == "" {
		return "empty event_id"
	}
	if !isOffered[d.ActionID] {
		return fmt.Sprintf("action_id %q is not one of the offered %v", d.ActionID, offered)
	}
	if !(d.Probability > 0 && d.Probability <= 1) {
		return fmt.Sprintf("probability %v is not in (0, 1]", d.Probability)
	}
	if len(d.Ranking) != len(offered) {
		return fmt.Sprintf("ranking has %d actions, %d were offered", len(d.Ranking), len(offered))
	}
	seen := map[string]bool{}
	sum := 0.0
	for _, r := range d.Ranking {
		if !isOffered[r.ActionID] || seen[r.ActionID] {
			return fmt.Sprintf("ranking action %q is not offered or is repeated", r.ActionID)
		}
		if r.Probability < 0 || r.Probability > 1 {
			return fmt.Sprintf("ranking probability %v of %q is not in [0, 1]", r.Probability, r.ActionID)
		}
		seen[r.ActionID] = true
		sum += r.Probability
	}
	if math.Abs(sum-1) > 1e-6 {
		return fmt.Sprintf("ranking probabilities sum to %v, not 1", sum)
	}
	if d.Ranking[0].ActionID != d.ActionID || math.Abs(d.Ranking[0].Probability-d.Probability) > 1e-9 {
		return fmt.Sprintf("ranking starts with %+v, not the chosen action with its probability", d.Ranking[0])
	}
	return ""
}
