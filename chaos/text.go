package chaos

import (
	"fmt"
	"io"
	"strings"
)

// WriteText prints r for people.
func WriteText(w io.Writer, r Report) {
	fmt.Fprintf(w, "seed                %d\n", r.Seed)
	fmt.Fprintf(w, "acknowledged        %d\n", r.Acknowledged)
	fmt.Fprintf(w, "indeterminate       %d (%d of them in the log)\n", r.Indeterminate, r.IndeterminateFound)
	fmt.Fprintf(w, "reads               %d\n", r.Reads)
	fmt.Fprintf(w, "final records       %d\n", r.FinalRecords)
	var fs []string
	for _, k := range sortedKeys(r.Faults) {
		fs = append(fs, fmt.Sprintf("%s=%d", k, r.Faults[k]))
	}
	fmt.Fprintf(w, "faults              %s\n", strings.Join(fs, " "))
	fmt.Fprintf(w, "max unavailable     %d ms, worst shard of all topics (bound %d ms; not counted: time without a live majority)\n",
		r.MaxUnavailableMs, r.UnavailableBoundMs)
	for _, t := range r.Topics {
		fmt.Fprintf(w, "  topic %-15s %d acknowledged, %d final records, %d expired, worst shard %d unavailable %d ms\n",
			t.Name, t.Acknowledged, t.FinalRecords, t.Expired, t.WorstShard, t.MaxShardUnavailableMs)
		fmt.Fprintf(w, "    per shard (ms)  %v\n", t.ShardUnavailableMs)
	}
	writeHealing(w, r)
	fmt.Fprintf(w, "expired             %d (acknowledged, below the log start and older than the retention; not lost)\n", r.Expired)
	fmt.Fprintf(w, "lagging replicas    %d\n", r.LaggingReplicas)
	fmt.Fprintf(w, "order indeterminate %d (a failed send landed after later ones; not a violation)\n", r.OrderIndeterminate)
	for _, ex := range r.Examples["order_indeterminate"] {
		fmt.Fprintf(w, "    e.g. %s\n", ex)
	}
	for _, v := range []struct {
		name string
		n    int
	}{
		{"lost", r.Lost}, {"duplicated", r.Duplicated}, {"divergent", r.Divergent}, {"altered", r.Altered},
		{"phantom_reads", r.PhantomReads}, {"read_gaps", r.ReadGaps}, {"order_violations", r.OrderViolations},
		{"unknown_records", r.UnknownRecords}, {"unavailable_shards", r.UnavailableShards},
		{"unreplicated", r.Unreplicated}, {"drain_failed", r.DrainFailed},
	} {
		fmt.Fprintf(w, "%-19s %d\n", strings.ReplaceAll(v.name, "_", " "), v.n)
		for _, ex := range r.Examples[v.name] {
			fmt.Fprintf(w, "    e.g. %s\n", ex)
		}
	}
	for _, e := range r.Errors {
		fmt.Fprintf(w, "harness error: %s\n", e)
	}
	verdict := "PASS"
	switch {
	case !r.Safe():
		verdict = "FAIL"
	case len(r.Errors) > 0:
		verdict = "INCONCLUSIVE"
	}
	fmt.Fprintf(w, "verdict             %s\n", verdict)
}

// writeHealing prints what the kill-forever and the drain did and the final replication
// check, for runs that had them.
func writeHealing(w io.Writer, r Report) {
	ms := func(v int64) string {
		if v < 0 {
			return "never"
		}
		return fmt.Sprintf("%.1f s", float64(v)/1000)
	}
	if kf := r.KillForever; kf != nil {
		fmt.Fprintf(w, "kill-forever        %s (node %d) at %s; fully replicated %s after the kill\n",
			kf.Node, kf.Num, ms(kf.AtMs), ms(kf.FullReplicationMs))
	}
	if d := r.Drain; d != nil {
		state := "removed and stopped"
		if !d.Removed {
			state = "NOT removed"
		}
		switch {
		case d.Skipped != "":
			fmt.Fprintf(w, "drain               %s: skipped: %s\n", d.Node, d.Skipped)
		case d.Err != "":
			fmt.Fprintf(w, "drain               %s (node %d): FAILED after %s, holding %d replicas at its start, %s\n",
				d.Node, d.Num, ms(d.DurationMs), d.Moved, state)
		default:
			fmt.Fprintf(w, "drain               %s (node %d): %d replicas moved in %s, %s\n", d.Node, d.Num, d.Moved, ms(d.DurationMs), state)
		}
	}
	if rp := r.Replication; rp != nil {
		fmt.Fprintf(w, "replication         every shard at RF on live nodes %s after the faults ended (bound %s)\n",
			ms(rp.FullAfterMs), ms(rp.BoundMs))
	}
}
