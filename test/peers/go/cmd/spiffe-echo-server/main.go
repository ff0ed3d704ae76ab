// spiffe-echo-server: a go-spiffe v2 mTLS server (tlsconfig.MTLSServerConfig with
// tlsconfig.AuthorizeID) that echoes every connection back and half-closes its
// write side when the client has half-closed. It prints "listening <addr>" on
// stdout once bound (use -listen 127.0.0.1:0), then one stderr line per
// connection: "accepted <peer-id>" or "handshake failed: <error>".
package main

import (
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"

	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"meshproxy.test/peers/internal/peer"
)

func main() {
	var files peer.Files
	fs := flag.NewFlagSet("spiffe-echo-server", flag.ExitOnError)
	files.Register(fs)
	listen := fs.String("listen", "127.0.0.1:0", "address to listen on")
	_ = fs.Parse(os.Args[1:])
	svid, bundle, authorizer, err := files.Load()
	if err != nil {
		peer.Fatal("spiffe-echo-server: %v", err)
	}
	conf := tlsconfig.MTLSServerConfig(svid, bundle, authorizer)
	conf.MinVersion = tls.VersionTLS13
	ln, err := tls.Listen("tcp", *listen, conf)
	if err != nil {
		peer.Fatal("spiffe-echo-server: listen %s: %v", *listen, err)
	}
	fmt.Printf("listening %s\n", ln.Addr())
	for {
		c, err := ln.Accept()
		if err != nil {
			peer.Fatal("spiffe-echo-server: accept: %v", err)
		}
		go serve(c.(*tls.Conn))
	}
}

func serve(c *tls.Conn) {
	defer c.Close()
	if err := c.Handshake(); err != nil {
		fmt.Fprintf(os.Stderr, "handshake failed: %v\n", err)
		return
	}
	id := "?"
	if certs := c.ConnectionState().PeerCertificates; len(certs) > 0 {
		if pid, err := x509svid.IDFromCert(certs[0]); err == nil {
			id = pid.String()
		}
	}
	fmt.Fprintf(os.Stderr, "accepted %s resumed=%t\n", id, c.ConnectionState().DidResume)
	n, err := io.Copy(c, c)
	if err != nil && !errors.Is(err, net.ErrClosed) {
		fmt.Fprintf(os.Stderr, "echo %s after %d bytes: %v\n", id, n, err)
		return
	}
	// The client half-closed (close_notify): answer with our own close_notify.
	_ = c.CloseWrite()
}
