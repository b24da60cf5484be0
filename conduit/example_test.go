package conduit_test

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/conduit-go/conduit/conduit"
)

// Serve an upper-casing handler on a free loopback port and dial it by
// the URI the listener reports.
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := conduit.New(nil)
	defer c.Close()

	ln, err := c.Listen(ctx, "tcp://127.0.0.1:0")
	if err != nil {
		fmt.Println(err)
		return
	}
	srvCtx, stop := context.WithCancel(ctx)
	defer stop()
	done := make(chan error, 1)
	go func() {
		done <- conduit.ServeListener(srvCtx, ln, conduit.HandlerFunc(func(_ context.Context, f conduit.Flow) {
			b, _ := io.ReadAll(f)
			io.WriteString(f, strings.ToUpper(string(b)))
		}), time.Second)
	}()

	f, err := c.Dial(ctx, ln.URI())
	if err != nil {
		fmt.Println(err)
		return
	}
	io.WriteString(f, "hello, conduit")
	f.CloseWrite()
	reply, _ := io.ReadAll(f)
	f.Close()
	fmt.Println(string(reply))

	stop()
	fmt.Println(<-done)
	// Output:
	// HELLO, CONDUIT
	// <nil>
}
