// Package tlsconf holds what the server, the client and the tools share about
// shardlog's certificates: which certificate names a node (node-to-node calls need
// one) and which principal a client certificate names.
package tlsconf

import (
	"crypto/x509"
	"slices"
)

// NodeOU is the organizational unit every node certificate carries. A verified
// client certificate with it is a node's identity: only such a caller may make
// node-to-node calls (forwarding with hops, join, shard status). `shardlog certs`
// writes node.crt with it; client certificates must not have it.
const NodeOU = "shardlog-node"

// IsNodeCert reports whether a verified certificate names a shardlog node.
func IsNodeCert(c *x509.Certificate) bool {
	return c != nil && slices.Contains(c.Subject.OrganizationalUnit, NodeOU)
}

// Principal is the principal a verified client certificate authenticates: its
// subject's common name.
func Principal(c *x509.Certificate) string {
	if c == nil {
		return ""
	}
	return c.Subject.CommonName
}
