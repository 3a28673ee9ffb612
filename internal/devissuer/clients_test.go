package devissuer

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseClients(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		yaml    string
		want    []Client
		wantErr []string // substrings, each expected in the error
	}{
		{
			name: "good",
			yaml: `
clients:
- client_id: billing
  client_secret: s3cret
  name: Billing service
  permissions: true
  grants:
  - audience: urn:apigee:target:api
    scopes: [read:target, write:target]
  - audience: https://api.example.com/
    scopes: []
`,
			want: []Client{{
				ClientID: "billing", ClientSecret: "s3cret", Name: "Billing service", Permissions: true,
				Grants: []Grant{
					{Audience: "urn:apigee:target:api", Scopes: []string{"read:target", "write:target"}},
					{Audience: "https://api.example.com/", Scopes: []string{}},
				},
			}},
		},
		{
			name: "unknown field",
			yaml: `
clients:
- client_id: a
  client_secret: b
  scope: read
  grants: [{audience: x}]
`,
			wantErr: []string{`unknown field "scope"`},
		},
		{
			name:    "unknown top-level field",
			yaml:    "clients: [{client_id: a, client_secret: b, grants: [{audience: x}]}]\nkeys: []\n",
			wantErr: []string{`unknown field "keys"`},
		},
		{
			name: "bad",
			yaml: `
clients:
- client_secret: ""
  grants: []
- client_id: "has space"
  client_secret: x
  grants: [{audience: ""}, {audience: a, scopes: ["two words"]}]
- client_id: dup
  client_secret: x
  grants: [{audience: a}, {audience: a}]
- client_id: dup
  client_secret: x
  grants: [{audience: a}]
`,
			wantErr: []string{
				"clients[0].client_id: required",
				"clients[0].client_secret: required",
				"clients[0].grants: at least one grant is required",
				"clients[1].client_id: must not contain spaces",
				"clients[1].grants[0].audience: required",
				`clients[1].grants[1].scopes[0]: "two words" is not a scope token`,
				`clients[2].grants[1].audience: "a" granted twice`,
				`clients[3].client_id: "dup" already used by clients[2]`,
			},
		},
		{name: "no clients", yaml: "clients: []\n", wantErr: []string{"at least one client"}},
		{name: "not yaml", yaml: "clients: [", wantErr: []string{"parse"}},
		{name: "wrong type", yaml: "clients: [{client_id: a, client_secret: b, permissions: maybe, grants: [{audience: x}]}]", wantErr: []string{"parse"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := ParseClients([]byte(tt.yaml))
			if len(tt.wantErr) == 0 {
				if err != nil {
					t.Fatalf("ParseClients: %v", err)
				}
				if diff := cmp.Diff(tt.want, got); diff != "" {
					t.Errorf("clients (-want +got):\n%s", diff)
				}
				return
			}
			if err == nil {
				t.Fatalf("ParseClients accepted it: %+v", got)
			}
			for _, s := range tt.wantErr {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q\nlacks %q", err, s)
				}
			}
		})
	}
}

func TestExampleClientsFile(t *testing.T) {
	t.Parallel()
	clients, err := LoadClients("../../examples/dev-issuer/clients.yaml")
	if err != nil {
		t.Fatalf("the example clients file does not load: %v", err)
	}
	if len(clients) == 0 {
		t.Fatal("the example clients file has no clients")
	}
	if _, err := LoadClients("testdata/does-not-exist.yaml"); err == nil {
		t.Error("LoadClients of a missing file: no error")
	}
}

func TestWriteClientLines(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	clients := append(DemoClients(), Client{ClientID: "multi", ClientSecret: "m", Grants: []Grant{
		{Audience: "a", Scopes: []string{"x"}}, {Audience: "b"},
	}})
	if err := WriteClientLines(&b, clients); err != nil {
		t.Fatal(err)
	}
	want := `client client_id=demo-m2m client_secret=demo-m2m-secret audience=urn:apigee:target:api scopes="read:target write:target"
client client_id=demo-admin client_secret=demo-admin-secret audience=urn:apigee:target:api scopes="read:target admin:write"
client client_id=demo-readonly client_secret=demo-readonly-secret audience=urn:apigee:target:api scopes="read:target"
client client_id=multi client_secret=m audience=a scopes="x"
client client_id=multi client_secret=m audience=b scopes=""
`
	if diff := cmp.Diff(want, b.String()); diff != "" {
		t.Errorf("lines (-want +got):\n%s", diff)
	}
}
