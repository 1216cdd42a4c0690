package backend

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
)

// A PostgreSQL database that is not the backend's is refused, and so is
// an empty one unless initialising is asked for: an issuer whose books
// are gone (a wrong URL, a dropped schema) must not start over.
func TestOpenRefusesEmptyOrForeignPostgres(t *testing.T) {
	postgresOnly(t)
	ctx := context.Background()
	open := func(url string, init bool) error {
		s, err := Open(Config{PostgresURL: url, IssuerToken: testIssuerToken, Initialise: init})
		if err == nil {
			s.Close()
		}
		return err
	}
	empty := newPGDatabase(t)
	if err := open(empty, false); err == nil || !strings.Contains(err.Error(), "holds no tables") {
		t.Errorf("empty database without initialising: %v", err)
	}
	foreign := newPGDatabase(t)
	if err := pgServer(t).Exec(ctx, foreign, `CREATE TABLE orders(id BIGINT PRIMARY KEY)`); err != nil {
		t.Fatal(err)
	}
	for _, init := range []bool{false, true} {
		if err := open(foreign, init); err == nil || !strings.Contains(err.Error(), "not the backend's (no meta table)") {
			t.Errorf("another program's database (initialise %v): %v", init, err)
		}
	}
	other := newPGDatabase(t)
	if err := pgServer(t).Exec(ctx, other, `CREATE TABLE meta(k TEXT PRIMARY KEY, v BYTEA); INSERT INTO meta VALUES('schema', 'other-program-2')`); err != nil {
		t.Fatal(err)
	}
	if err := open(other, true); err == nil || !strings.Contains(err.Error(), `of schema "other-program-2"`) {
		t.Errorf("a database of another schema: %v", err)
	}
	if err := open(empty, true); err != nil {
		t.Fatalf("initialising an empty database: %v", err)
	}
	if err := open(empty, false); err != nil {
		t.Errorf("the initialised database: %v", err)
	}
	if err := open("postgres://spdlab:wrong-password@127.0.0.1:1/x", false); err == nil || strings.Contains(err.Error(), "wrong-password") {
		t.Errorf("a server that does not answer: %v (the password must not be shown)", err)
	}
}

// Backends that start together on one new database migrate it once and
// sign with one key.
func TestPostgresBackendsStartTogether(t *testing.T) {
	postgresOnly(t)
	db := newPGDatabase(t)
	const n = 4
	srvs := make([]*Server, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			srvs[i], errs[i] = Open(Config{PostgresURL: db, IssuerToken: testIssuerToken, Initialise: true})
		}()
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("backend %d: %v", i, errs[i])
		}
		defer srvs[i].Close()
		if !srvs[i].PublicKey().Equal(srvs[0].PublicKey()) {
			t.Errorf("backend %d signs with another key", i)
		}
	}
	ms, _ := migrationsOf(srvs[0].eng.migrations())
	if got := schemaRows(t, srvs[0].rdb); len(got) != len(ms) {
		t.Errorf("schema_migrations %v, want each of %d migrations once", got, len(ms))
	}
}

// abortFirstAttempts makes newLab's backends abort the first transaction
// of every write after its work, as PostgreSQL does on a serialization
// failure; set only by TestWritesRunAgain.
var abortFirstAttempts bool

func abortFirst(attempt int) error {
	if attempt == 0 {
		return &pgconn.PgError{Code: "40001", Message: "could not serialize access (aborted by the test)"}
	}
	return nil
}

// A write PostgreSQL aborts runs again from the start, and its answer is
// the one of the run that committed: nothing of the aborted run (an
// update listed twice, a serial acknowledged twice, a balance debited
// twice) shows. These tests of the API run with the first transaction of
// every write aborted.
func TestWritesRunAgain(t *testing.T) {
	postgresOnly(t)
	abortFirstAttempts = true
	defer func() { abortFirstAttempts = false }()
	for name, test := range map[string]func(*testing.T){
		"Register": TestRegister, "Authorise": TestAuthorise, "AuthoriseHoldThenSettle": TestAuthoriseHoldThenSettle,
		"Settle": TestSettle, "TokenVault": TestTokenVault, "ParameterUpdates": TestParameterUpdates, "OTP": TestOTP,
		"Transfers": TestTransfers, "SettleAcknowledgementAndOfflineTransfers": TestSettleAcknowledgementAndOfflineTransfers,
		"TransferInWaitsForTransferOut": TestTransferInWaitsForTransferOut, "CloneIsCaughtAndRevoked": TestCloneIsCaughtAndRevoked,
		"OTPGuessingLocksOut": TestOTPGuessingLocksOut,
	} {
		t.Run(name, test)
	}
}
