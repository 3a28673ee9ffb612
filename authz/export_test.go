package authz

// CachedTokens is the number of verified tokens a's cache holds, for tests
// outside the package.
func CachedTokens(a *Authorizer) int { return a.cache.Len() }
