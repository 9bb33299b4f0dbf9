package bench

import (
	"slices"
	"sort"
	"time"
)

// shardOutage measures one shard's write outage from its acknowledgement times.
//
// acks are the times the producer's callbacks reported success for the shard's
// records, in ascending order (callbacks run in offset order per shard). killAt is the
// moment just before SIGKILL was sent to the leader's node, goneAt the moment its
// process was known to be gone. The shard resumed with the first acknowledgement at
// or after goneAt, of any record (one sent before the kill and acknowledged after a
// retry counts: it is what a user sees end the outage). NB: acknowledgements between
// killAt and goneAt are ignored, because they may be responses the dying leader wrote
// before the signal.
//
// outage is the time from killAt to that acknowledgement; gap is the time from the
// last acknowledgement before goneAt (or from killAt when there was none) to it. ok is
// false when no acknowledgement came at or after goneAt.
func shardOutage(acks []time.Time, killAt, goneAt time.Time) (outage, gap time.Duration, ok bool) {
	i := sort.Search(len(acks), func(i int) bool { return !acks[i].Before(goneAt) })
	if i == len(acks) {
		return 0, 0, false
	}
	resumed := acks[i]
	last := killAt
	if i > 0 {
		last = acks[i-1]
	}
	return resumed.Sub(killAt), resumed.Sub(last), true
}

// medianMax returns the median (the mean of the middle two for an even count) and
// the maximum of ds; both are zero for no values.
func medianMax(ds []time.Duration) (median, maximum time.Duration) {
	if len(ds) == 0 {
		return 0, 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		median = s[n/2]
	} else {
		median = (s[n/2-1] + s[n/2]) / 2
	}
	return median, s[n-1]
}

// ms converts d to fractional milliseconds.
func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// probeOutages turns idle probe results into per-shard outages, measured from killAt
// to the probe's acknowledgement, and counts the failed attempts.
func probeOutages(res []probeResult, killAt time.Time) (per []ShardOutage, failed uint64) {
	per = make([]ShardOutage, 0, len(res))
	for _, p := range res {
		o := ShardOutage{Shard: p.shard, Attempts: p.attempts}
		if p.lastErr != nil {
			o.LastError = p.lastErr.Error()
		}
		failed += uint64(p.attempts)
		if !p.acked.IsZero() {
			o.Recovered, o.OutageMs = true, ms(p.acked.Sub(killAt))
			failed--
		}
		per = append(per, o)
	}
	return per, failed
}

// mostLeader returns the node ID that leads the most of the shards whose leaders are
// given (0: no leader), the lowest ID on a tie; 0 when no shard has a leader.
func mostLeader(leaders []uint64) uint64 {
	count := map[uint64]int{}
	var best uint64
	for _, l := range leaders {
		if l == 0 {
			continue
		}
		count[l]++
		if c, b := count[l], count[best]; best == 0 || c > b || (c == b && l < best) {
			best = l
		}
	}
	return best
}
