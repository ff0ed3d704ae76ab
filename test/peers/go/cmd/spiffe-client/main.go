// spiffe-client: a go-spiffe v2 mTLS client (tlsconfig.MTLSClientConfig with
// tlsconfig.AuthorizeID for the server's ID). Default: copies stdin to the
// connection (half-closing at EOF) and the connection to stdout. With -send N:
// sends N pseudo-random bytes, half-closes, reads to EOF and prints one JSON
// line {"sent":N,"sentSha256":..,"received":M,"receivedSha256":..}. Exit 1
// with one stderr line when the handshake or authorization fails.
package main

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"flag"
	"io"
	"os"
	"sync"

	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"

	"meshproxy.test/peers/internal/peer"
)

func main() {
	var files peer.Files
	fs := flag.NewFlagSet("spiffe-client", flag.ExitOnError)
	files.Register(fs)
	addr := fs.String("connect", "", "host:port of the server")
	sni := fs.String("servername", "", "SNI to send (optional)")
	send := fs.Int64("send", -1, "send N random bytes and print sha256s instead of copying stdin")
	_ = fs.Parse(os.Args[1:])
	svid, bundle, authorizer, err := files.Load()
	if err != nil {
		peer.Fatal("spiffe-client: %v", err)
	}
	conf := tlsconfig.MTLSClientConfig(svid, bundle, authorizer)
	conf.MinVersion = tls.VersionTLS13
	conf.ServerName = *sni
	c, err := tls.Dial("tcp", *addr, conf)
	if err != nil {
		peer.Fatal("spiffe-client: %v", err)
	}
	defer c.Close()
	if err := c.Handshake(); err != nil {
		peer.Fatal("spiffe-client: handshake: %v", err)
	}
	if *send < 0 {
		copyStdio(c)
		return
	}
	sent, recv := sha256.New(), sha256.New()
	var received int64
	var wg sync.WaitGroup
	var readErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		received, readErr = io.Copy(recv, c)
	}()
	if _, err := io.Copy(io.MultiWriter(c, sent), io.LimitReader(rand.Reader, *send)); err != nil {
		peer.Fatal("spiffe-client: send: %v", err)
	}
	if err := c.CloseWrite(); err != nil {
		peer.Fatal("spiffe-client: close write: %v", err)
	}
	wg.Wait()
	if readErr != nil {
		peer.Fatal("spiffe-client: read after %d bytes: %v", received, readErr)
	}
	_ = json.NewEncoder(os.Stdout).Encode(map[string]any{
		"sent": *send, "sentSha256": hex.EncodeToString(sent.Sum(nil)),
		"received": received, "receivedSha256": hex.EncodeToString(recv.Sum(nil)),
	})
}

func copyStdio(c *tls.Conn) {
	done := make(chan error, 1)
	go func() {
		_, err := io.Copy(os.Stdout, c)
		done <- err
	}()
	if _, err := io.Copy(c, os.Stdin); err != nil {
		peer.Fatal("spiffe-client: write: %v", err)
	}
	_ = c.CloseWrite()
	if err := <-done; err != nil {
		peer.Fatal("spiffe-client: read: %v", err)
	}
}
