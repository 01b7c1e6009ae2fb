package segment

// Exported for the external tests.
var (
	CannotFaultFD        = cannotFault
	RefaultCannotFail    = refaultCannotFail
	ParseRelease         = parseRelease
	SetTestHookAdmitStat = func(f func(fd int)) { testHookAdmitStat = f }
)

// SetOvercommitFile points refaultCannotFail at another file, for tests.
func SetOvercommitFile(path string) (restore func()) {
	old := overcommitFile
	overcommitFile = path
	return func() { overcommitFile = old }
}
