package glr

// The build's flags. CGO_CFLAGS and CGO_LDFLAGS from the environment come first, so they choose
// another header or library directory (see the package documentation).

// #cgo CFLAGS: -I${SRCDIR}/../../include
// #cgo LDFLAGS: -lgitlab_runner_api
import "C"
