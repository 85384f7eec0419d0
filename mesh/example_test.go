package mesh_test

import (
	"context"
	"fmt"
	"log"

	"github.com/logmesh/logmesh/mesh"
)

// A node that advertises its log stream, joins the "logs" group and
// prints what is shouted there.
func Example() {
	node, err := mesh.New(mesh.DefaultConfig())
	if err != nil {
		log.Fatal(err)
	}
	defer node.Close()
	node.SetHeader("X-LOGD-PUB", "tcp://10.0.0.5:5600")
	if err := node.Start(context.Background()); err != nil {
		log.Fatal(err)
	}
	if err := node.Join("logs"); err != nil {
		log.Fatal(err)
	}
	for ev := range node.Events() {
		switch ev.Type {
		case mesh.EventEnter:
			fmt.Printf("%s entered, log stream at %s\n", ev.Name, ev.Headers["X-LOGD-PUB"])
		case mesh.EventShout:
			fmt.Printf("%s in %s: %s\n", ev.Name, ev.Group, ev.Frames[0])
		}
	}
}

// Where UDP broadcast does not reach: one seed serves gossip, the others
// join it.
func ExampleWANConfig() {
	seed := mesh.WANConfig()
	seed.GossipBind = "0.0.0.0:5671"

	member := mesh.WANConfig()
	member.Join = []string{"seed.example:5671"}
	fmt.Println(seed.BeaconPort, member.Join)
	// Output: 0 [seed.example:5671]
}
