package store

import (
	"context"
	"strings"
	"testing"
)

// cardWords are the words of a column name that would mean it holds payment card data
// (PAN, security code, expiry). Stripe Checkout and the portal collect cards; tunelab
// keeps only Stripe ids and states (SECURITY.md).
var cardWords = map[string]bool{
	"card": true, "cards": true, "cardnumber": true, "pan": true, "cc": true, "ccn": true, "ccnum": true,
	"cvc": true, "cvc2": true, "cvv": true, "cvv2": true, "csc": true,
}

// cardPairs are word runs that mean the same: exp_month, security_code and the like (a
// session's "expiry" alone is not card data).
var cardPairs = []string{"exp_month", "exp_year", "expiry_month", "expiry_year", "expiration_month", "expiration_year", "security_code", "card_number", "account_number"}

// stripeIDColumns may name a card word because they hold a Stripe object's id (pm_...,
// card_...), never the card itself. Each entry must exist, so the list cannot rot.
var stripeIDColumns = map[string]bool{}

// billingIDColumns are where tunelab keeps Stripe ids: the walk must reach them.
var billingIDColumns = []string{"billing_accounts.customer_id", "billing_accounts.subscription_id", "billing_accounts.price_id", "stripe_events.id"}

func looksLikeCardColumn(name string) bool {
	n := strings.ToLower(name)
	for _, w := range strings.Split(n, "_") {
		if cardWords[w] {
			return true
		}
	}
	for _, p := range cardPairs {
		if strings.Contains("_"+n+"_", "_"+p+"_") {
			return true
		}
	}
	return false
}

func TestSchemaHasNoCardDataColumns(t *testing.T) {
	s, _ := openTest(t, Options{})
	ctx := context.Background()
	rows, err := s.r.QueryContext(ctx, `SELECT name FROM sqlite_master WHERE type IN ('table', 'view') AND name NOT LIKE 'sqlite_%' ORDER BY name`)
	if err != nil {
		t.Fatal(err)
	}
	var tables []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		tables = append(tables, n)
	}
	if err := rows.Close(); err != nil {
		t.Fatal(err)
	}
	if len(tables) < 10 {
		t.Fatalf("only %d tables in a migrated database: %v", len(tables), tables)
	}
	seen, columns := map[string]bool{}, 0
	for _, table := range tables {
		cols, err := s.r.QueryContext(ctx, `SELECT name FROM pragma_table_info(?)`, table)
		if err != nil {
			t.Fatal(err)
		}
		for cols.Next() {
			var col string
			if err := cols.Scan(&col); err != nil {
				t.Fatal(err)
			}
			columns++
			key := table + "." + col
			seen[key] = true
			if looksLikeCardColumn(col) && !stripeIDColumns[key] {
				t.Errorf("column %s looks like it holds card data; tunelab keeps only Stripe ids", key)
			}
		}
		if err := cols.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if columns == 0 {
		t.Fatal("no columns read")
	}
	for key := range stripeIDColumns {
		if !seen[key] {
			t.Errorf("allow-listed column %s is not in the schema", key)
		}
	}
	for _, key := range billingIDColumns {
		if !seen[key] {
			t.Errorf("no column %s: the schema walk missed the billing tables", key)
		}
	}
}

func TestLooksLikeCardColumn(t *testing.T) {
	for name, want := range map[string]bool{
		"card_number": true, "pan": true, "card_pan": true, "cvc": true, "CVV": true, "exp_month": true, "exp_year": true,
		"card_exp_month": true, "cc_number": true, "cardnumber": true, "security_code": true, "card_last4": true,
		"stripe_customer_id": false, "subscription_id": false, "expires_at": false, "span_id": false, "company": false,
		"expected": false, "expiry": false, "panel": false, "discard_after": false, "price_id": false,
	} {
		if got := looksLikeCardColumn(name); got != want {
			t.Errorf("looksLikeCardColumn(%q) = %v, want %v", name, got, want)
		}
	}
}
