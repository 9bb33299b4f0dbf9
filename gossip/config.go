package gossip

import (
	"errors"
	"fmt"
	"log/slog"
	"shardlog/ids"
	"time"

	"github.com/hashicorp/memberlist"
)

// Profile names accepted in Config.Profile.
const (
	// ProfileLAN selects memberlist.DefaultLANConfig timings (probe every 1 s).
	ProfileLAN = "lan"
	// ProfileLocal selects memberlist.DefaultLocalConfig timings (faster, for
	// loopback and single-host clusters).
	ProfileLocal = "local"
)

// DefaultPort is the default gossip port (client port 7400 + 2).
const DefaultPort = 7402

// DefaultRejoinInterval is how often the rejoin loop calls Config.Seeds.
const DefaultRejoinInterval = 5 * time.Second

// DefaultEventBuffer is the default capacity of the Events channel.
const DefaultEventBuffer = 1024

// Config configures one Gossip instance. Fill defaults with EnsureDefaults
// and check with Validate; Start does both.
type Config struct {
	// NodeID is this node's ID; the memberlist node name is its 16-digit hex
	// form. Required, non-zero. Hard setting: never changes for a data dir.
	NodeID ids.NodeID
	// BindAddr is the IP to listen on for gossip TCP and UDP. Default
	// "0.0.0.0" (all interfaces).
	BindAddr string
	// BindPort is the gossip port for both TCP and UDP (DefaultPort, 7402,
	// in production). Zero lets the OS pick a free port (tests);
	// Gossip.Addr reports the port chosen.
	BindPort int
	// AdvertiseAddr is the IP other nodes use to reach this node. Default:
	// BindAddr, or memberlist's choice of a private IP when BindAddr is
	// 0.0.0.0.
	AdvertiseAddr string
	// AdvertisePort is the port other nodes use to reach this node.
	// Default: the bound port.
	AdvertisePort int
	// Meta is the initial metadata gossiped with this node (encoded size
	// below 512 bytes). Change it later with Gossip.UpdateMeta.
	Meta NodeMeta
	// Logger receives this package's logs and memberlist's (its DEBUG and
	// INFO chatter at debug level, WARN and ERR at warn). Default
	// slog.Default().
	Logger *slog.Logger
	// Profile picks memberlist's base timings: ProfileLAN (default) or
	// ProfileLocal.
	Profile string
	// Fast overrides the profile with timings for tests: probe every
	// 200 ms with a 100 ms timeout, gossip every 50 ms, suspicion
	// multiplier 2, push/pull every 2 s, TCP timeout 1 s, and a rejoin
	// interval of 500 ms unless RejoinInterval is set.
	Fast bool
	// Seeds returns gossip addresses (host:port) to rejoin through. It is
	// called every RejoinInterval while this node is alone or sees fewer
	// alive members than the nodes it knows. Optional; nil disables the
	// rejoin loop. It must not block for long.
	Seeds func() []string
	// RejoinInterval is the rejoin loop period. Default 5 s (500 ms with
	// Fast).
	RejoinInterval time.Duration
	// DeadNodeReclaimTime lets a node whose ID is DEAD rejoin from a
	// different address once it has been dead this long. Zero (default)
	// means never: a node may only come back on its old address.
	DeadNodeReclaimTime time.Duration
	// EventBuffer is the capacity of the Events channel. Default 1024.
	EventBuffer int
}

// Sentinel errors returned by Start and the Gossip methods.
var (
	// ErrInvalidConfig wraps every Config validation problem.
	ErrInvalidConfig = errors.New("gossip: invalid config")
	// ErrMetaTooLarge is returned when encoded metadata does not fit in a
	// memberlist alive message.
	ErrMetaTooLarge = errors.New("gossip: node metadata too large")
	// ErrShutdown is returned by calls on a Gossip that was shut down.
	ErrShutdown = errors.New("gossip: shut down")
	// ErrNoSeeds is returned by Join when given no addresses.
	ErrNoSeeds = errors.New("gossip: no seeds to join")
)

// DefaultConfig returns the production defaults for node id: all
// interfaces, port 7402, LAN timings.
func DefaultConfig(id ids.NodeID) Config {
	c := Config{NodeID: id, BindPort: DefaultPort}
	c.EnsureDefaults()
	return c
}

// EnsureDefaults fills zero fields with their defaults. BindPort stays as
// given: zero means an OS-chosen port.
func (c *Config) EnsureDefaults() {
	if c.BindAddr == "" {
		c.BindAddr = "0.0.0.0"
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Profile == "" {
		c.Profile = ProfileLAN
	}
	if c.RejoinInterval == 0 {
		c.RejoinInterval = DefaultRejoinInterval
		if c.Fast {
			c.RejoinInterval = 500 * time.Millisecond
		}
	}
	if c.EventBuffer == 0 {
		c.EventBuffer = DefaultEventBuffer
	}
}

// Validate reports every problem with the config at once, wrapped in
// ErrInvalidConfig. It does no I/O.
func (c *Config) Validate() error {
	var errs []error
	if c.NodeID == 0 {
		errs = append(errs, errors.New("node ID must be non-zero"))
	}
	if c.BindPort < 0 || c.BindPort > 65535 {
		errs = append(errs, fmt.Errorf("bind port %d out of range", c.BindPort))
	}
	if c.AdvertisePort < 0 || c.AdvertisePort > 65535 {
		errs = append(errs, fmt.Errorf("advertise port %d out of range", c.AdvertisePort))
	}
	if c.Profile != ProfileLAN && c.Profile != ProfileLocal {
		errs = append(errs, fmt.Errorf("profile %q is not %q or %q", c.Profile, ProfileLAN, ProfileLocal))
	}
	if c.RejoinInterval < 0 {
		errs = append(errs, fmt.Errorf("rejoin interval %v is negative", c.RejoinInterval))
	}
	if c.DeadNodeReclaimTime < 0 {
		errs = append(errs, fmt.Errorf("dead node reclaim time %v is negative", c.DeadNodeReclaimTime))
	}
	if c.EventBuffer < 0 {
		errs = append(errs, fmt.Errorf("event buffer %d is negative", c.EventBuffer))
	}
	if err := checkMetaSize(c.Meta); err != nil {
		errs = append(errs, err)
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %w", ErrInvalidConfig, errors.Join(errs...))
}

// nodeName is the memberlist node name for a node ID.
func nodeName(id ids.NodeID) string {
	return fmt.Sprintf("%016x", id)
}

// memberlistConfig builds memberlist's config from a defaulted, valid Config.
// The delegates are attached by the caller.
func (c *Config) memberlistConfig() *memberlist.Config {
	var mc *memberlist.Config
	if c.Profile == ProfileLocal {
		mc = memberlist.DefaultLocalConfig()
	} else {
		mc = memberlist.DefaultLANConfig()
	}
	if c.Fast {
		mc.ProbeInterval = 200 * time.Millisecond
		mc.ProbeTimeout = 100 * time.Millisecond
		mc.GossipInterval = 50 * time.Millisecond
		mc.SuspicionMult = 2
		mc.PushPullInterval = 2 * time.Second
		mc.TCPTimeout = time.Second
	}
	mc.Name = nodeName(c.NodeID)
	mc.BindAddr = c.BindAddr
	mc.BindPort = c.BindPort
	mc.AdvertiseAddr = c.AdvertiseAddr
	mc.AdvertisePort = c.AdvertisePort
	if mc.AdvertisePort == 0 {
		mc.AdvertisePort = c.BindPort
	}
	mc.DeadNodeReclaimTime = c.DeadNodeReclaimTime
	mc.LogOutput = nil
	mc.Logger = newMemberlistLogger(c.Logger)
	return mc
}

// checkMetaSize checks that m fits in memberlist's metadata limit even with
// the leaving flag set.
func checkMetaSize(m NodeMeta) error {
	b, err := encodeMeta(m, true)
	if err != nil {
		return err
	}
	if len(b) > memberlist.MetaMaxSize {
		return fmt.Errorf("%w: %d bytes, limit %d", ErrMetaTooLarge, len(b), memberlist.MetaMaxSize)
	}
	return nil
}
