// Package jwks owns the key sets of the token providers: fetching them (from a
// URI, through OpenID discovery, from a file or inline), keeping them fresh,
// and serving them to the authorizer as an authz.KeySource.
package jwks
