// Command webhook-receiver is an example receiver for Label Backup webhook
// notifications, written with the standard library only.
//
// It verifies the X-LabelBackup-Signature-SHA256 header (the hex
// HMAC-SHA256 of the raw request body under WEBHOOK_SECRET) with a
// timing-safe comparison, answers 401 to a missing or wrong signature, and
// logs one line per verified notification. With -record FILE it also
// appends each verified payload to FILE as one JSON line.
//
//	WEBHOOK_SECRET=your-super-secret-webhook-key PORT=3000 webhook-receiver
//
// Endpoints: POST /webhook (notifications), GET /health.
package main

import (
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"time"
)

func main() {
	port := flag.String("port", envOr("PORT", "3000"), "TCP port to listen on (env PORT)")
	secret := flag.String("secret", os.Getenv("WEBHOOK_SECRET"), "HMAC-SHA256 signing secret (env WEBHOOK_SECRET)")
	record := flag.String("record", "", "append each verified payload as a JSON line to this file")
	flag.Parse()

	if *secret == "" {
		log.Fatal("WEBHOOK_SECRET is not set: every notification would be rejected")
	}
	rec, err := openRecorder(*record)
	if err != nil {
		log.Fatal(err)
	}
	if rec != nil {
		defer rec.Close()
	}
	logger := log.New(os.Stdout, "", log.LstdFlags)
	srv := &http.Server{
		Addr:              net.JoinHostPort("", *port),
		Handler:           NewHandler(*secret, rec, logger),
		ReadHeaderTimeout: 10 * time.Second,
	}
	logger.Printf("Webhook server listening on port %s", *port)
	logger.Printf("Webhook secret configured: Yes")
	if err := srv.ListenAndServe(); err != nil {
		log.Fatal(err)
	}
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// openRecorder opens path for appending, or returns nil for "".
func openRecorder(path string) (*Recorder, error) {
	if path == "" {
		return nil, nil
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("record file: %w", err)
	}
	return &Recorder{f: f}, nil
}
