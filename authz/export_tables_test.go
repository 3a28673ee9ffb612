package authz

// Hooks for the normalisation tables of normalize_table_test.go: the
// functions are unexported because adapters never call them (Check does).
var (
	ReadHost      = readHost
	NormalizeHost = normalizeHost
	CookieWithout = cookieWithout
)
