module github.com/arbiter/arbiter/clients/go

// Built offline against Debian bookworm's Go packages (see vendor-debian.sh); elsewhere
// `go mod tidy` resolves these minimum versions normally.
go 1.16

require (
	google.golang.org/grpc v1.33.3
	google.golang.org/protobuf v1.28.1
)
