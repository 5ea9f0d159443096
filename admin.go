package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"tunelab/handlers"
	"tunelab/store"
)

// runAdmin runs operator commands against the data directory.
func runAdmin(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout io.Writer) error {
	if len(args) > 0 && args[0] == "rotate-key" {
		return runRotateKey(ctx, args[1:], getenv, stdout)
	}
	if len(args) == 0 || args[0] != "create-user" {
		return errors.New("admin: usage: tunelab admin create-user --email E --password-stdin [--admin] [--data DIR]")
	}
	fs := flag.NewFlagSet("admin create-user", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	email := fs.String("email", "", "email of the new account")
	fromStdin := fs.Bool("password-stdin", false, "read the password from the first line of standard input")
	isAdmin := fs.Bool("admin", false, "make the account an administrator")
	dataDir := fs.String("data", "", "data directory (default TUNELAB_DATA_DIR or ./data)")
	if err := fs.Parse(args[1:]); err != nil {
		return fmt.Errorf("admin create-user: %w", err)
	}
	if *email == "" || !*fromStdin {
		return errors.New("admin create-user: --email and --password-stdin are required (the password is never taken as an argument)")
	}
	line, err := bufio.NewReader(stdin).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("admin create-user: read password: %w", err)
	}
	password := strings.TrimRight(line, "\r\n")

	dir := *dataDir
	if dir == "" {
		dir = getenv("TUNELAB_DATA_DIR")
	}
	if dir == "" {
		dir = "./data"
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("admin create-user: create data dir: %w", err)
	}
	st, err := store.Open(ctx, dbPath(dir), store.Options{})
	if err != nil {
		return err
	}
	defer st.Close()
	// An operator-created account records the terms version current at creation.
	u, err := st.CreateUser(ctx, store.NewUser{Email: *email, Password: password, IsAdmin: *isAdmin, TermsVersion: handlers.TermsVersion})
	var verr *store.ValidationError
	switch {
	case errors.As(err, &verr):
		msgs := []string{}
		for field, msg := range verr.Fields {
			msgs = append(msgs, field+": "+msg)
		}
		return fmt.Errorf("admin create-user: %s", strings.Join(msgs, "; "))
	case errors.Is(err, store.ErrEmailTaken):
		return fmt.Errorf("admin create-user: an account with email %s already exists", *email)
	case err != nil:
		return err
	}
	if err := st.RecordAudit(ctx, store.AuditEntry{SubjectID: u.ID, Action: store.AuditUserCreated, Target: fmt.Sprintf("account %d", u.ID)}); err != nil {
		return err
	}
	role := "user"
	if u.IsAdmin {
		role = "admin"
	}
	fmt.Fprintf(stdout, "created %s %s (id %d)\n", role, u.Email, u.ID)
	return nil
}
