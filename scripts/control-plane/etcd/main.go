// Command etcd is the official etcd server: go.etcd.io/etcd/server/v3 ships
// the server as a library (etcdmain) and its main package lives in a module
// with local replace directives, so this is the main that calls it.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
