package layout_test

import "sync"

// syncMutex is the standard library's mutex, which must be refused.
type syncMutex = sync.Mutex
