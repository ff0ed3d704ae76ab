// Package peer loads an X509-SVID and a trust bundle from PEM files, the way
// spiffe-helper leaves them on disk, and builds the authorizer for one
// expected SPIFFE ID. Shared by the go-spiffe echo server and client that the
// mesh-proxy interop tests run as real peers.
package peer

import (
	"flag"
	"fmt"
	"os"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

// Files are the PEM paths and the peer ID to authorize, from flags.
type Files struct {
	SVID, Key, Bundle, Authorize string
}

// Register adds -svid, -key, -bundle and -authorize to fs.
func (f *Files) Register(fs *flag.FlagSet) {
	fs.StringVar(&f.SVID, "svid", "", "PEM file: our leaf, then any intermediates")
	fs.StringVar(&f.Key, "key", "", "PEM file: our private key (PKCS#8)")
	fs.StringVar(&f.Bundle, "bundle", "", "PEM file: the trust bundle (roots) of the peer's trust domain")
	fs.StringVar(&f.Authorize, "authorize", "", "the SPIFFE ID the peer must present")
}

// Load reads the SVID and the bundle; the bundle belongs to the trust domain
// of the ID to authorize (go-spiffe checks a peer only against its own domain's bundle).
func (f *Files) Load() (*x509svid.SVID, *x509bundle.Bundle, tlsconfig.Authorizer, error) {
	if f.SVID == "" || f.Key == "" || f.Bundle == "" || f.Authorize == "" {
		return nil, nil, nil, fmt.Errorf("-svid, -key, -bundle and -authorize are all required")
	}
	id, err := spiffeid.FromString(f.Authorize)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("-authorize %q: %w", f.Authorize, err)
	}
	svid, err := x509svid.Load(f.SVID, f.Key)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("-svid/-key: %w", err)
	}
	bundle, err := x509bundle.Load(id.TrustDomain(), f.Bundle)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("-bundle: %w", err)
	}
	return svid, bundle, tlsconfig.AuthorizeID(id), nil
}

// Fatal prints one line to stderr and exits 1.
func Fatal(format string, a ...any) {
	fmt.Fprintf(os.Stderr, format+"\n", a...)
	os.Exit(1)
}
