package conduitgrpc_test

import "syscall"

const killSignal = syscall.SIGKILL
