package authz

import (
	"context"
	"fmt"
	"slices"
	"strings"
)

// addSenderChecks fills in the defaults of p's DPoP options and adds the
// "Authorization: DPoP" token source when p accepts DPoP.
func (a *Authorizer) addSenderChecks(p *provider) error {
	d := &p.DPoP
	if d.Mode == SenderDisabled {
		return nil
	}
	if d.Replay == nil {
		return fmt.Errorf("authz: provider %q: dpop: no replay store", p.Name)
	}
	if d.IATOffset <= 0 {
		d.IATOffset = DefaultDPoPIATOffset
	}
	if d.IATLeeway <= 0 {
		d.IATLeeway = DefaultDPoPIATLeeway
	}
	list := d.Algorithms
	if len(list) == 0 {
		list = DefaultDPoPAlgorithms
	}
	p.dpopAlgs = map[string]bool{}
	for _, alg := range list {
		if !SupportedProofAlgorithm(alg) {
			return fmt.Errorf("authz: provider %q: dpop algorithm %q not supported", p.Name, alg)
		}
		p.dpopAlgs[alg] = true
	}
	p.dpopAlgList = strings.Join(list, " ")
	// RFC 9449 §7.1: the DPoP scheme in the Authorization header, one
	// space, the token; whatever sources the provider names for Bearer.
	a.dpopSource = a.addSource(TokenSource{Header: "authorization", Prefix: "DPoP "})
	p.sources = append(p.sources, a.dpopSource)
	for _, alg := range list {
		if !slices.Contains(strings.Fields(a.dpopAlgs), alg) {
			a.dpopAlgs = strings.TrimSpace(a.dpopAlgs + " " + alg)
		}
	}
	return nil
}

// checkSender enforces the token's binding: a DPoP-bound token proves its
// key with a proof, a certificate-bound one comes on the connection of its
// certificate, and modes or the route may require a binding. On a denial
// it fills d and returns false. The proof's jti is claimed last, once
// everything else passed.
func (a *Authorizer) checkSender(ctx context.Context, d *Decision, r *Request, v *verified, f found, isDPoP, routeNeeds bool) bool {
	p := v.p
	deny := func(reason Reason, desc string) bool {
		d.Reason, d.Description = reason, desc
		return false
	}
	var pf proof
	var certThumb string // the client certificate's, once it matched
	dpopOK, mtlsOK := false, false
	switch {
	case isDPoP:
		var reason Reason
		var why string
		if pf, reason, why = a.checkProof(r, p, f.token); reason != "" {
			return deny(reason, why)
		}
		if !v.boundJKT() {
			return deny(ReasonSenderMismatch, "the token is not bound to a DPoP key")
		}
		if !v.jktIs(pf.jkt) {
			return deny(ReasonSenderMismatch, "the DPoP proof's key is not the one the token is bound to")
		}
		dpopOK = true
	case v.boundJKT() && p.DPoP.Mode != SenderDisabled:
		// RFC 9449 §7.2: a bound token sent as Bearer is a downgrade.
		d.dpopAlgs = p.dpopAlgList
		return deny(ReasonMissingProof, "the DPoP-bound token was sent without the DPoP scheme and proof")
	}
	if v.boundX5T() && p.MTLS.Mode != SenderDisabled {
		t := certThumbprint(r, p.MTLS.Source)
		if t == "" {
			return deny(ReasonMissingProof, "the certificate-bound token came without a client certificate")
		}
		if !v.x5tIs(t) {
			return deny(ReasonSenderMismatch, "the client certificate is not the one the token is bound to")
		}
		mtlsOK, certThumb = true, t
	}
	if p.DPoP.Mode == SenderRequired && !dpopOK {
		d.dpopAlgs = p.dpopAlgList
		return deny(ReasonUnboundToken, "the issuer's tokens must be DPoP-bound")
	}
	if p.MTLS.Mode == SenderRequired && !mtlsOK {
		return deny(ReasonUnboundToken, "the issuer's tokens must be certificate-bound")
	}
	if routeNeeds && !dpopOK && !mtlsOK {
		if p.DPoP.Mode != SenderDisabled {
			d.dpopAlgs = p.dpopAlgList
		}
		return deny(ReasonUnboundToken, "the route requires a sender-constrained token")
	}
	if dpopOK {
		if reason, why := a.claimProof(ctx, p, pf); reason != "" {
			return deny(reason, why)
		}
		d.Metadata.CnfMethod, d.Metadata.CnfThumbprint = "dpop", pf.jkt
	} else if mtlsOK {
		d.Metadata.CnfMethod, d.Metadata.CnfThumbprint = "mtls", certThumb
	}
	return true
}

// HeadersRead lists the lower-case request headers some check of this
// authorizer reads: token sources, cookies, :authority, :scheme, the CORS
// preflight headers and, as configured, dpop, x-forwarded-proto,
// x-forwarded-host and x-forwarded-client-cert. An adapter that copies
// only some headers into the Request (the Envoy codec) must copy at least
// these, and any header a new check reads must be added here. The caller
// must not modify it.
func (a *Authorizer) HeadersRead() []string { return a.headersRead }

func (a *Authorizer) computeHeadersRead() []string {
	out := []string{":authority", ":scheme", "origin", "access-control-request-method"}
	add := func(h string) {
		if !slices.Contains(out, h) {
			out = append(out, h)
		}
	}
	for _, s := range a.sources {
		switch {
		case s.Header != "":
			add(s.Header)
		case s.Cookie != "":
			add("cookie")
		}
	}
	for _, p := range a.providers {
		if p.DPoP.Mode != SenderDisabled {
			add("dpop")
			if p.DPoP.TrustForwarded {
				add("x-forwarded-proto")
				add("x-forwarded-host")
			}
		}
		if p.MTLS.Mode != SenderDisabled && p.MTLS.Source == CertFromXFCC {
			add("x-forwarded-client-cert")
		}
	}
	return out
}
