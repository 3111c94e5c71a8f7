module github.com/vmnet-broker/vmnet-broker/go

// Go 1.24 is the oldest supported release: the darwin code uses
// runtime.AddCleanup, new in 1.24.
go 1.24
