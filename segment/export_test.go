package segment

// Exported for the external tests.
var (
	CannotFaultFD        = cannotFault
	RefaultCannotFail    = refaultCannotFail
	ParseRelease         = parseRelease
	SetTestHookAdmitStat = func(f func(fd int)) { testHookAdmitStat = f }
)
