// Package conduitgrpc plugs conduit into gRPC.
package conduitgrpc
