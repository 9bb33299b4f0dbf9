package client

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// ErrAborted is reported for records that were not acknowledged when CloseContext's
// context ended; a record that had been sent may or may not have been written.
var ErrAborted = errors.New("client: producer closed before acknowledgement")

// ShardError is the error of one shard's records or fetches: every error a Producer
// callback reports and every fetch error a Consumer returns is one, so the message
// names the topic and shard. errors.Is and errors.As see the error it wraps.
type ShardError struct {
	Topic string
	Shard uint32
	Err   error
}

func (e *ShardError) Error() string {
	return fmt.Sprintf("shard %d of topic %s: %v", e.Shard, e.Topic, e.Err)
}

func (e *ShardError) Unwrap() error { return e.Err }

// noLeaderNote is what errors add when the last DescribeTopic answer named no leader
// for the shard: a call can then only wait for an election or for lost replicas.
const noLeaderNote = "the cluster reports no leader for the shard (election in progress, or too few replicas up)"

// namesNoLeader reports whether err already carries a server's no-leader message
// ("no leader known for the shard", "no leader reachable").
func namesNoLeader(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "no leader known") || strings.Contains(msg, "no leader reachable")
}

// deliveryError is a record's error after ProducerOptions.DeliveryTimeout. It is
// ErrDeliveryTimeout and, when the shard's last request failed, that error too.
type deliveryError struct {
	after    time.Duration
	last     error // the last request's error, or nil when none was sent
	noLeader bool
}

func (e *deliveryError) Error() string {
	msg := fmt.Sprintf("not acknowledged within the delivery timeout (%s)", e.after)
	if e.noLeader && (e.last == nil || !namesNoLeader(e.last)) {
		msg += ": " + noLeaderNote
	}
	if e.last != nil {
		msg += "; last error: " + e.last.Error()
	}
	return msg
}

func (e *deliveryError) Unwrap() []error {
	if e.last == nil {
		return []error{ErrDeliveryTimeout}
	}
	return []error{ErrDeliveryTimeout, e.last}
}

// abortError is a record's error when CloseContext gave up on it. It is ErrAborted and
// the context's cause.
type abortError struct {
	cause error
	sent  bool // a request carried the record: it may have been written
}

func (e *abortError) Error() string {
	if e.sent {
		return fmt.Sprintf("not acknowledged before the producer was closed (%v); it was sent, so it may or may not be written", e.cause)
	}
	return fmt.Sprintf("not acknowledged before the producer was closed (%v); it was never sent", e.cause)
}

func (e *abortError) Unwrap() []error { return []error{ErrAborted, e.cause} }
