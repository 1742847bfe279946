// Command arbiter-example makes one Choose and one Reward call against an Arbiter server.
//
//	arbiter-example -target 127.0.0.1:50051 -experiment homepage
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/arbiter/arbiter/clients/go/arbiter"
	arbiterv1 "github.com/arbiter/arbiter/clients/go/arbiterv1"
)

func main() {
	target := flag.String("target", envOr("ARBITER_TARGET", "127.0.0.1:50051"), "server host:port")
	experiment := flag.String("experiment", "homepage", "experiment name")
	flag.Parse()

	client, err := arbiter.Dial(*target)
	if err != nil {
		log.Fatalf("dial %s: %v", *target, err)
	}
	defer client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	decision, err := client.Choose(ctx, arbiter.Choice{
		Experiment: *experiment,
		UnitID:     "user-42",
		Context: []*arbiterv1.Namespace{
			arbiter.Features("user", map[string]float64{"age": 31}, map[string]string{"country": "fr"}),
		},
		Actions: []*arbiterv1.Action{
			arbiter.NewAction("hero-a", arbiter.Features("item", nil, map[string]string{"color": "red"})),
			arbiter.NewAction("hero-b", arbiter.Features("item", nil, map[string]string{"color": "blue"})),
		},
	})
	if err != nil {
		log.Fatalf("choose: %v", err)
	}
	fmt.Printf("event %s: show %s (p=%.3f, variant %q)\n",
		decision.EventID, decision.ActionID, decision.Probability, decision.Variant)

	learned, err := client.Reward(ctx, decision.EventID, 1.0)
	if err != nil {
		log.Fatalf("reward: %v", err)
	}
	fmt.Printf("reward stored, learned=%v\n", learned)
}

func envOr(name, fallback string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return fallback
}
