package conduitgrpc_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/conduit-go/conduit/conduit"
	conduitgrpc "github.com/conduit-go/conduit/grpc"
)

// A gRPC server on a Unix socket (a conduit listener), and a channel to
// it through the Builder: conduit resolves the target's URI, the
// Builder's dialer reaches the socket.
func ExampleNewBuilder() {
	dir, err := os.MkdirTemp("", "conduitgrpc-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	c := conduit.New(nil)
	defer c.Close()
	ln, err := c.Listen(context.Background(), "unix://"+filepath.Join(dir, "grpc.sock"))
	if err != nil {
		log.Fatal(err)
	}
	srv := grpc.NewServer()
	healthpb.RegisterHealthServer(srv, health.NewServer())
	served := make(chan struct{})
	go func() { defer close(served); srv.Serve(ln) }()
	defer func() { srv.Stop(); <-served }()

	b, err := conduitgrpc.NewBuilder(&conduitgrpc.Options{Conduit: c})
	if err != nil {
		log.Fatal(err)
	}
	defer b.Close()
	conn, err := grpc.NewClient("conduit:///"+ln.URI(), append(b.DialOptions(),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultServiceConfig(conduitgrpc.ServiceConfig))...)
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	resp, err := healthpb.NewHealthClient(conn).Check(context.Background(), &healthpb.HealthCheckRequest{})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(resp.Status)
	// Output: SERVING
}
