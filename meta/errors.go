package meta

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/lni/dragonboat/v4/statemachine"
)

// Sentinel errors; an *Error matches the one of its Code with errors.Is.
var (
	// ErrInvalidArgument matches *Error with CodeInvalidArgument.
	ErrInvalidArgument = errors.New("meta: invalid argument")
	// ErrNotFound matches *Error with CodeNotFound.
	ErrNotFound = errors.New("meta: not found")
	// ErrAlreadyExists matches *Error with CodeAlreadyExists.
	ErrAlreadyExists = errors.New("meta: already exists")
	// ErrFailedPrecondition matches *Error with CodeFailedPrecondition.
	ErrFailedPrecondition = errors.New("meta: failed precondition")
	// ErrResourceExhausted matches *Error with CodeResourceExhausted.
	ErrResourceExhausted = errors.New("meta: resource exhausted")
	// ErrInvalidCommand is returned by Decode for bytes that are not a
	// well-formed command.
	ErrInvalidCommand = errors.New("meta: invalid command")
	// ErrNoTopic is returned by ResultTopic when a successful result carries
	// no topic.
	ErrNoTopic = errors.New("meta: result carries no topic")
	// ErrNoNode is returned by ResultNode when a successful result carries
	// no node.
	ErrNoNode = errors.New("meta: result carries no node")
)

// Code classifies an apply error. Its values travel in Raft results, so they
// never change.
type Code uint64

// Codes of apply errors. CodeOK (0) is success.
const (
	// CodeOK means the command was applied.
	CodeOK Code = 0
	// CodeInvalidArgument: malformed command, bad name, count or limit.
	CodeInvalidArgument Code = 1
	// CodeNotFound: the named topic does not exist.
	CodeNotFound Code = 2
	// CodeAlreadyExists: a topic of that name exists.
	CodeAlreadyExists Code = 3
	// CodeFailedPrecondition: the cluster cannot satisfy the command now,
	// e.g. the replication factor exceeds the live nodes.
	CodeFailedPrecondition Code = 4
	// CodeResourceExhausted: a cluster-wide limit (topic count) is reached.
	CodeResourceExhausted Code = 5
)

// String returns the code's name.
func (c Code) String() string {
	switch c {
	case CodeOK:
		return "OK"
	case CodeInvalidArgument:
		return "InvalidArgument"
	case CodeNotFound:
		return "NotFound"
	case CodeAlreadyExists:
		return "AlreadyExists"
	case CodeFailedPrecondition:
		return "FailedPrecondition"
	case CodeResourceExhausted:
		return "ResourceExhausted"
	default:
		return fmt.Sprintf("Code(%d)", uint64(c))
	}
}

// sentinel returns the sentinel error of the code, or nil.
func (c Code) sentinel() error {
	switch c {
	case CodeInvalidArgument:
		return ErrInvalidArgument
	case CodeNotFound:
		return ErrNotFound
	case CodeAlreadyExists:
		return ErrAlreadyExists
	case CodeFailedPrecondition:
		return ErrFailedPrecondition
	case CodeResourceExhausted:
		return ErrResourceExhausted
	default:
		return nil
	}
}

// Error is a validation or apply error with a code for the API boundary and
// a message meant for the client.
type Error struct {
	// Code classifies the error.
	Code Code
	// Msg says what was wrong, naming the bad input.
	Msg string
}

// Error returns "meta: " followed by the message.
func (e *Error) Error() string { return "meta: " + e.Msg }

// Is reports whether target is the sentinel error of e's code.
func (e *Error) Is(target error) bool {
	s := e.Code.sentinel()
	return s != nil && target == s
}

// errorf builds an *Error.
func errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Msg: fmt.Sprintf(format, args...)}
}

// errorResult encodes an apply error as a Raft result: the code in Value,
// the message in Data.
func errorResult(err *Error) Result {
	return Result{Value: uint64(err.Code), Data: []byte(err.Msg)}
}

// ResultError returns nil if r reports success, else the *Error it carries.
func ResultError(r statemachine.Result) error {
	if Code(r.Value) == CodeOK {
		return nil
	}
	return &Error{Code: Code(r.Value), Msg: string(r.Data)}
}

// ResultTopic returns the topic carried by the result of a CreateTopic or
// DeleteTopic command, or the command's error.
func ResultTopic(r statemachine.Result) (*Topic, error) {
	return resultJSON[Topic](r, ErrNoTopic, "topic")
}

// ResultNode returns the node as recorded by a RegisterNode command, with the
// MetaVoter flag the apply chose, or the command's error.
func ResultNode(r statemachine.Result) (*Node, error) {
	return resultJSON[Node](r, ErrNoNode, "node")
}

// resultJSON decodes the value a successful result carries as JSON; missing
// is the error for a success without one.
func resultJSON[T any](r statemachine.Result, missing error, what string) (*T, error) {
	if err := ResultError(r); err != nil {
		return nil, err
	}
	if len(r.Data) == 0 {
		return nil, missing
	}
	var v T
	if err := json.Unmarshal(r.Data, &v); err != nil {
		return nil, fmt.Errorf("meta: decode %s result: %w", what, err)
	}
	return &v, nil
}
