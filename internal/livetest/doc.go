// Package livetest holds cross-structure tests that run real processes in
// real kernel states: liveness under a full fd table and under a hidepid
// /proc with other uids (Mutex and ring roles), and WaitSet over rings fed
// by other processes. It has no non-test code.
package livetest
