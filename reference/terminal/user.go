package terminal

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/spdlab/spdlab/reference/apdu"
	"github.com/spdlab/spdlab/reference/backend"
	"github.com/spdlab/spdlab/reference/medium"
)

// User is the person at the terminal: it answers what verification needs
// (C32, C33), gives consent, looks at the codes the terminal shows for a
// merchant's scanner (C8) and is told every outcome (C29).
type User interface {
	// PIN asks for the PIN; triesLeft is the device's count.
	PIN(ctx context.Context, triesLeft int) (string, error)
	// Biometric takes a biometric sample (a 16-byte feature vector).
	Biometric(ctx context.Context) ([]byte, error)
	// Answer asks an identity question.
	Answer(ctx context.Context, question string) (string, error)
	// SMSCode asks for the one-time code the backend sent to the phone.
	SMSCode(ctx context.Context, sent backend.OTPChallenge) (string, error)
	// Location gives where the terminal is (ISO 3166-1 numeric region).
	Location(ctx context.Context) (uint16, error)
	// Consent asks the user to agree to what the terminal is about to do.
	Consent(ctx context.Context, question string) (bool, error)
	// ShowCode shows a coded medium (a PNG) for someone else to scan.
	ShowCode(ctx context.Context, c Code) error
	// Report tells the user how a service ended (C29).
	Report(ctx context.Context, o Outcome)
}

// A StepWatcher is a User that is also told the result of each
// verification step as it happens, so that it can show the cardholder what
// the device said before the service ends: "PIN wrong (2 tries left)".
// A User that is not one learns only the outcome.
type StepWatcher interface {
	VerifyStep(ctx context.Context, s Step)
}

// Step is the result of one verification step.
type Step struct {
	// Check names it: "certificate", "identity question", "SMS code",
	// "biometric" or "PIN".
	Check string
	// Err is nil when the step passed.
	Err error
	// TriesLeft is the PIN or biometric tries the device has left, from
	// its status word 63Cx when it refused; -1 when it did not say.
	TriesLeft int
	// SW is the status word with which the device refused; 0 for none.
	SW apdu.SW
}

// Code is a coded medium the terminal shows: its text, which PNG draws as
// a symbol of Format for whoever looks at the screen.
type Code struct {
	Title  string
	Text   string // what the image carries
	Format medium.Format
}

// CodeScale is the pixels per module of a shown code's image.
const CodeScale = 4

// PNG draws the code as the terminal's screen shows it (medium.RenderPNG,
// CodeScale pixels per module). It is drawn when a user asks for it, so
// that a user who takes the text alone (ScriptedUser, whose codes a test
// may read from the text or from the image) does not pay for an image.
func (c Code) PNG() ([]byte, error) { return medium.RenderPNG(c.Text, c.Format, CodeScale) }

// ErrNoAnswer is returned by a ScriptedUser asked something its script
// does not answer.
var ErrNoAnswer = errors.New("terminal: the user has no answer")

// ScriptedUser answers from a script: the tests' user. The zero value
// refuses consent and answers nothing; set the fields it should answer.
type ScriptedUser struct {
	// PINs are entered in turn; the last one repeats.
	PINs []string
	// Sample is the biometric sample given.
	Sample []byte
	// Answers maps identity questions to answers.
	Answers map[string]string
	// SMS reads the one-time code (from the backend's gateway outbox in
	// tests).
	SMS func(ctx context.Context, sent backend.OTPChallenge) (string, error)
	// Region is the location given (0: none).
	Region uint16
	// Agree is the answer to every consent question.
	Agree bool

	mu       sync.Mutex
	pins     int
	asked    []string
	codes    []Code
	outcomes []Outcome
}

var _ User = (*ScriptedUser)(nil)

func (u *ScriptedUser) ask(what string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.asked = append(u.asked, what)
}

// PIN implements User.
func (u *ScriptedUser) PIN(ctx context.Context, triesLeft int) (string, error) {
	u.ask("pin")
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.PINs) == 0 {
		return "", fmt.Errorf("%w: PIN", ErrNoAnswer)
	}
	i := min(u.pins, len(u.PINs)-1)
	u.pins++
	return u.PINs[i], nil
}

// Biometric implements User.
func (u *ScriptedUser) Biometric(ctx context.Context) ([]byte, error) {
	u.ask("biometric")
	if u.Sample == nil {
		return nil, fmt.Errorf("%w: biometric sample", ErrNoAnswer)
	}
	return bytes.Clone(u.Sample), nil
}

// Answer implements User.
func (u *ScriptedUser) Answer(ctx context.Context, question string) (string, error) {
	u.ask("identity: " + question)
	a, ok := u.Answers[question]
	if !ok {
		return "", fmt.Errorf("%w: %q", ErrNoAnswer, question)
	}
	return a, nil
}

// SMSCode implements User.
func (u *ScriptedUser) SMSCode(ctx context.Context, sent backend.OTPChallenge) (string, error) {
	u.ask("sms")
	if u.SMS == nil {
		return "", fmt.Errorf("%w: SMS code", ErrNoAnswer)
	}
	return u.SMS(ctx, sent)
}

// Location implements User.
func (u *ScriptedUser) Location(ctx context.Context) (uint16, error) {
	u.ask("location")
	if u.Region == 0 {
		return 0, fmt.Errorf("%w: location", ErrNoAnswer)
	}
	return u.Region, nil
}

// Consent implements User.
func (u *ScriptedUser) Consent(ctx context.Context, question string) (bool, error) {
	u.ask("consent: " + question)
	return u.Agree, nil
}

// ShowCode implements User: it keeps the code.
func (u *ScriptedUser) ShowCode(ctx context.Context, c Code) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.codes = append(u.codes, c)
	return nil
}

// Report implements User: it keeps the outcome.
func (u *ScriptedUser) Report(ctx context.Context, o Outcome) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.outcomes = append(u.outcomes, o)
}

// Asked lists what the user was asked, in order.
func (u *ScriptedUser) Asked() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]string(nil), u.asked...)
}

// Codes lists the codes shown, in order.
func (u *ScriptedUser) Codes() []Code {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]Code(nil), u.codes...)
}

// Outcomes lists the outcomes reported, in order.
func (u *ScriptedUser) Outcomes() []Outcome {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]Outcome(nil), u.outcomes...)
}
