// Command etcd is upstream etcd built from its Go module, so tests and the lab run a
// real etcd without downloading a prebuilt binary.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
