package bench

import (
	"errors"
	"fmt"
)

// usageErrors collects every usage problem of a configuration, so one run reports
// them all.
type usageErrors struct{ errs []error }

// add records a problem; format describes it by its flags.
func (u *usageErrors) add(format string, a ...any) {
	u.errs = append(u.errs, fmt.Errorf("%w: "+format, append([]any{ErrUsage}, a...)...))
}

// err joins the problems, or is nil when there are none.
func (u *usageErrors) err() error { return errors.Join(u.errs...) }
