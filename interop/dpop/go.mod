// This directory is a Node project (see package.json), not Go. This go.mod
// makes it a module of its own, so that the go command of the main module
// ("go test ./...", "go vet ./...") never walks into a node_modules here:
// the go command does not skip directories named node_modules.
module github.com/jwtauthz/jwt-authz/interop/dpop

go 1.26
