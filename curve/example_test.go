package curve_test

import (
	"context"
	"fmt"

	"github.com/go-zeromq/zmq4"
	"github.com/logmesh/logmesh/curve"
)

// A zmq4 ROUTER that admits one client key, and a DEALER that knows the
// ROUTER's public key.
func Example() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srvKeys, _ := curve.GenerateKeyPair()
	cliKeys, _ := curve.GenerateKeyPair()

	allow := curve.NewAllowList(cliKeys.Public)
	router := zmq4.NewRouter(ctx, zmq4.WithSecurity(curve.NewServer(srvKeys, allow.Authorize)))
	defer router.Close()
	if err := router.Listen("curve+tcp://127.0.0.1:0"); err != nil {
		fmt.Println(err)
		return
	}

	dealer := zmq4.NewDealer(ctx, zmq4.WithID(zmq4.SocketIdentity("d1")),
		zmq4.WithSecurity(curve.NewClient(cliKeys, srvKeys.Public)))
	defer dealer.Close()
	if err := dealer.Dial(curve.Endpoint("tcp://" + router.Addr().String())); err != nil {
		fmt.Println(err)
		return
	}
	_ = dealer.Send(zmq4.NewMsgString("secret log line"))
	msg, _ := router.Recv()
	fmt.Printf("%s: %s\n", msg.Frames[0], msg.Frames[1])
	// Output: d1: secret log line
}
