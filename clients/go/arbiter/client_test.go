package arbiter

import (
	"context"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	arbiterv1 "github.com/arbiter/arbiter/clients/go/arbiterv1"
)

// fakeServer answers Choose with the first offered action and remembers rewarded events.
type fakeServer struct {
	arbiterv1.UnimplementedDecisionServiceServer
	lastChoose *arbiterv1.ChooseRequest
	lastReward *arbiterv1.RewardRequest
	lastBatch  *arbiterv1.ChooseBatchRequest
	rewarded   map[string]bool
}

func (f *fakeServer) Choose(_ context.Context, req *arbiterv1.ChooseRequest) (*arbiterv1.ChooseResponse, error) {
	f.lastChoose = req
	if len(req.GetActions()) == 0 {
		return nil, status.Error(codes.InvalidArgument, "`actions` must not be empty")
	}
	resp := &arbiterv1.ChooseResponse{
		EventId: "ev-1", ActionId: req.GetActions()[0].GetId(), Probability: 1,
		Ranking: []*arbiterv1.RankedAction{{ActionId: req.GetActions()[0].GetId(), Probability: 1}},
		Variant: "main", ModelVersion: "0",
	}
	if req.GetExplain() {
		resp.Explanations = []*arbiterv1.ActionExplanation{{ActionId: resp.ActionId, Score: 0.75,
			Contributions: []*arbiterv1.FeatureContribution{{Feature: "user.age", Contribution: 0.5},
				{Feature: "exploration", Contribution: 0.25}}}}
	}
	return resp, nil
}

func (f *fakeServer) Reward(_ context.Context, req *arbiterv1.RewardRequest) (*arbiterv1.RewardResponse, error) {
	f.lastReward = req
	if f.rewarded[req.GetEventId()] {
		return nil, status.Error(codes.AlreadyExists, "already rewarded")
	}
	f.rewarded[req.GetEventId()] = true
	return &arbiterv1.RewardResponse{Learned: true}, nil
}

func (f *fakeServer) ChooseBatch(ctx context.Context, req *arbiterv1.ChooseBatchRequest) (*arbiterv1.ChooseBatchResponse, error) {
	f.lastBatch = req
	resp := &arbiterv1.ChooseBatchResponse{}
	for _, one := range req.GetRequests() {
		answer, err := f.Choose(ctx, one)
		result := &arbiterv1.ChooseBatchResult{Response: answer}
		if err != nil {
			result = &arbiterv1.ChooseBatchResult{Code: int32(status.Code(err)), Message: status.Convert(err).Message()}
		}
		resp.Results = append(resp.Results, result)
	}
	return resp, nil
}

func startFake(t *testing.T) (*Client, *fakeServer) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fake := &fakeServer{rewarded: map[string]bool{}}
	srv := grpc.NewServer()
	arbiterv1.RegisterDecisionServiceServer(srv, fake)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	c, err := Dial(lis.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c, fake
}

func TestChooseSendsTheChoiceAndConvertsTheDecision(t *testing.T) {
	c, fake := startFake(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	d, err := c.Choose(ctx, Choice{
		Experiment: "homepage", UnitID: "u1", Deferred: true,
		Context: []*arbiterv1.Namespace{Features("user", map[string]float64{"age": 3}, nil)},
		Actions: []*arbiterv1.Action{NewAction("a", Features("item", nil, map[string]string{"c": "red"}))},
	})

	if err != nil {
		t.Fatalf("Choose: %v", err)
	}
	if got := fake.lastChoose; got.GetExperiment() != "homepage" || got.GetUnitId() != "u1" || !got.GetDeferred() ||
		got.GetContext()[0].GetNumbers()["age"] != 3 || got.GetActions()[0].GetFeatures()[0].GetCategories()["c"] != "red" {
		t.Fatalf("server got %v", got)
	}
	want := Decision{EventID: "ev-1", ActionID: "a", Probability: 1, Variant: "main", ModelVersion: "0"}
	if d.EventID != want.EventID || d.ActionID != want.ActionID || d.Probability != want.Probability ||
		d.Variant != want.Variant || d.ModelVersion != want.ModelVersion {
		t.Fatalf("decision %+v, want %+v", d, want)
	}
	if len(d.Ranking) != 1 || d.Ranking[0] != (Ranked{ActionID: "a", Probability: 1}) {
		t.Fatalf("ranking %+v", d.Ranking)
	}
}

func TestChooseWithExplainAsksForExplanationsAndConvertsThem(t *testing.T) {
	c, fake := startFake(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	plain, err := c.Choose(ctx, Choice{Experiment: "homepage", Actions: []*arbiterv1.Action{NewAction("a")}})
	if err != nil || fake.lastChoose.GetExplain() || len(plain.Explanations) != 0 {
		t.Fatalf("without Explain: err %v, request %v, explanations %+v", err, fake.lastChoose, plain)
	}
	d, err := c.Choose(ctx, Choice{Experiment: "homepage", Actions: []*arbiterv1.Action{NewAction("a")}, Explain: true})
	if err != nil || !fake.lastChoose.GetExplain() {
		t.Fatalf("with Explain: err %v, request %v", err, fake.lastChoose)
	}
	want := Explanation{ActionID: "a", Score: 0.75, Contributions: []Contribution{{"user.age", 0.5}, {"exploration", 0.25}}}
	if len(d.Explanations) != 1 || d.Explanations[0].ActionID != want.ActionID || d.Explanations[0].Score != want.Score ||
		len(d.Explanations[0].Contributions) != 2 || d.Explanations[0].Contributions[0] != want.Contributions[0] ||
		d.Explanations[0].Contributions[1] != want.Contributions[1] {
		t.Fatalf("explanations %+v, want [%+v]", d.Explanations, want)
	}
}

func TestErrorsKeepTheirStatusCode(t *testing.T) {
	c, _ := startFake(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	_, chooseErr := c.Choose(ctx, Choice{Experiment: "homepage"})
	_, firstErr := c.Reward(ctx, "ev-1", 1)
	_, secondErr := c.Reward(ctx, "ev-1", 1)

	if status.Code(chooseErr) != codes.InvalidArgument {
		t.Errorf("Choose without actions: %v, want InvalidArgument", chooseErr)
	}
	if firstErr != nil {
		t.Errorf("first Reward: %v", firstErr)
	}
	if status.Code(secondErr) != codes.AlreadyExists {
		t.Errorf("second Reward: %v, want AlreadyExists", secondErr)
	}
}

func TestRewardWithIDSendsTheIdempotencyKey(t *testing.T) {
	c, fake := startFake(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	learned, err := c.RewardWithID(ctx, "ev-9", "click-1", 0.5)

	if err != nil || !learned {
		t.Fatalf("RewardWithID: learned=%v err=%v", learned, err)
	}
	if r := fake.lastReward; r.GetEventId() != "ev-9" || r.GetRewardId() != "click-1" || r.GetValue() != 0.5 {
		t.Fatalf("server got %v", r)
	}
}

func TestRewardWithoutEventIDFailsBeforeCallingTheServer(t *testing.T) {
	c := New(nil)

	_, err := c.Reward(context.Background(), "", 1)

	if err == nil {
		t.Fatal("Reward with an empty event id succeeded")
	}
}

func TestChooseBatchAnswersEachChoiceInOrderARefusedOneAsItsStatus(t *testing.T) {
	c, fake := startFake(t)
	ctx := context.Background()
	results, err := c.ChooseBatch(ctx, []Choice{
		{Experiment: "homepage", Actions: []*arbiterv1.Action{NewAction("a")}, ExcludedActionIDs: []string{"b"}},
		{Experiment: "homepage"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(results) != 2 || results[0].Err != nil || results[0].Decision.ActionID != "a" {
		t.Fatalf("first result: %+v", results)
	}
	if status.Code(results[1].Err) != codes.InvalidArgument || status.Convert(results[1].Err).Message() != "`actions` must not be empty" {
		t.Fatalf("second result: %v", results[1].Err)
	}
	if got := fake.lastBatch.GetRequests()[0].GetExcludedActionIds(); len(got) != 1 || got[0] != "b" {
		t.Fatalf("the first choice sent exclusions %v, want [b]", got)
	}
}
