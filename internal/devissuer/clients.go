package devissuer

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"sigs.k8s.io/yaml"
)

// Client is one machine-to-machine application of the stand-in tenant, like an
// Auth0 application with the client-credentials grant.
type Client struct {
	// ClientID identifies the client in token requests and becomes
	// "<client_id>@clients" in the sub claim. Required.
	ClientID string `json:"client_id"`
	// ClientSecret is compared in constant time. Required.
	ClientSecret string `json:"client_secret"`
	// Name is for people only.
	Name string `json:"name,omitempty"`
	// Permissions adds a "permissions" array claim holding the granted scopes,
	// like Auth0's RBAC setting "Add Permissions in the Access Token".
	Permissions bool `json:"permissions,omitempty"`
	// Grants lists the audiences (APIs) the client may ask tokens for, like
	// Auth0's client grants.
	Grants []Grant `json:"grants"`
}

// Grant is one audience a client may ask for, with the scopes it is granted there.
type Grant struct {
	// Audience is the API identifier, e.g. "urn:apigee:target:api". Required.
	Audience string `json:"audience"`
	// Scopes granted for Audience; a token carries all of them unless the
	// request narrows them with its scope parameter.
	Scopes []string `json:"scopes"`
}

// clientsFile is the YAML document read by LoadClients.
type clientsFile struct {
	Clients []Client `json:"clients"`
}

// DemoAudience is the audience granted to the built-in demo clients.
const DemoAudience = "urn:apigee:target:api"

// DemoClients returns the clients used when no clients file is given. Their
// secrets are fixed so that a demo walkthrough can be copied as is.
func DemoClients() []Client {
	return []Client{
		{
			ClientID:     "demo-m2m",
			ClientSecret: "demo-m2m-secret",
			Name:         "Demo machine-to-machine app",
			Grants:       []Grant{{Audience: DemoAudience, Scopes: []string{"read:target", "write:target"}}},
		},
		{
			ClientID:     "demo-admin",
			ClientSecret: "demo-admin-secret",
			Name:         "Demo admin app (RBAC permissions in the token)",
			Permissions:  true,
			Grants:       []Grant{{Audience: DemoAudience, Scopes: []string{"read:target", "admin:write"}}},
		},
		{
			ClientID:     "demo-readonly",
			ClientSecret: "demo-readonly-secret",
			Name:         "Demo read-only app",
			Grants:       []Grant{{Audience: DemoAudience, Scopes: []string{"read:target"}}},
		},
	}
}

// LoadClients reads a clients file (YAML or JSON). See ParseClients.
func LoadClients(path string) ([]Client, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("devissuer: read clients file: %w", err)
	}
	clients, err := ParseClients(data)
	if err != nil {
		return nil, fmt.Errorf("devissuer: clients file %q: %w", path, err)
	}
	return clients, nil
}

// ParseClients parses a clients document, `clients: [{client_id, client_secret,
// name, permissions, grants: [{audience, scopes}]}]`. Unknown fields are
// errors, and every problem is reported at once, each with its field path.
func ParseClients(data []byte) ([]Client, error) {
	var f clientsFile
	if err := yaml.UnmarshalStrict(data, &f); err != nil {
		return nil, fmt.Errorf("parse: %w", err)
	}
	if err := validateClients(f.Clients); err != nil {
		return nil, err
	}
	return f.Clients, nil
}

func validateClients(clients []Client) error {
	var errs []error
	if len(clients) == 0 {
		errs = append(errs, errors.New("clients: at least one client is required"))
	}
	ids := make(map[string]int, len(clients))
	for i, c := range clients {
		path := fmt.Sprintf("clients[%d]", i)
		switch {
		case c.ClientID == "":
			errs = append(errs, fmt.Errorf("%s.client_id: required", path))
		case strings.ContainsAny(c.ClientID, " \t\r\n:"):
			errs = append(errs, fmt.Errorf("%s.client_id: must not contain spaces or ':'", path))
		default:
			if j, dup := ids[c.ClientID]; dup {
				errs = append(errs, fmt.Errorf("%s.client_id: %q already used by clients[%d]", path, c.ClientID, j))
			}
			ids[c.ClientID] = i
		}
		if c.ClientSecret == "" {
			errs = append(errs, fmt.Errorf("%s.client_secret: required", path))
		}
		if len(c.Grants) == 0 {
			errs = append(errs, fmt.Errorf("%s.grants: at least one grant is required", path))
		}
		auds := make(map[string]bool, len(c.Grants))
		for j, g := range c.Grants {
			gpath := fmt.Sprintf("%s.grants[%d]", path, j)
			if g.Audience == "" {
				errs = append(errs, fmt.Errorf("%s.audience: required", gpath))
			} else if auds[g.Audience] {
				errs = append(errs, fmt.Errorf("%s.audience: %q granted twice", gpath, g.Audience))
			}
			auds[g.Audience] = true
			for k, s := range g.Scopes {
				if s == "" || strings.ContainsAny(s, " \t\r\n") {
					errs = append(errs, fmt.Errorf("%s.scopes[%d]: %q is not a scope token", gpath, k, s))
				}
			}
		}
	}
	return errors.Join(errs...)
}

// WriteClientLines prints one line per client and granted audience, in the
// stable format (scripts and tests read it):
//
//	client client_id=<id> client_secret=<secret> audience=<aud> scopes="<a b>"
//
// Printing secrets is deliberate: this is a development stand-in.
func WriteClientLines(w io.Writer, clients []Client) error {
	for _, c := range clients {
		for _, g := range c.Grants {
			if _, err := fmt.Fprintf(w, "client client_id=%s client_secret=%s audience=%s scopes=%q\n",
				c.ClientID, c.ClientSecret, g.Audience, strings.Join(g.Scopes, " ")); err != nil {
				return fmt.Errorf("devissuer: write client lines: %w", err)
			}
		}
	}
	return nil
}
