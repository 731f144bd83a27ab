package events

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/spendgate/spendgate/internal/config"
)

// ErrNATSUnreachable is wrapped when no NATS server answers.
var ErrNATSUnreachable = errors.New("nats unreachable")

// Broker is a connection to JetStream, and the embedded server behind it
// when nats.url is empty.
type Broker struct {
	NC       *nats.Conn
	JS       jetstream.JetStream
	Embedded *server.Server // nil when connected to an external server
	url      string
}

// Open connects to cfg.URL, or starts an embedded JetStream server listening
// on cfg.Listen with its store under dataDir/nats and connects to it in-process.
func Open(ctx context.Context, cfg config.NATS, dataDir, name string, log *slog.Logger) (*Broker, error) {
	b := &Broker{url: cfg.URL}
	opts := []nats.Option{nats.Name(name), nats.MaxReconnects(-1), nats.ReconnectWait(500 * time.Millisecond)}
	if log != nil {
		opts = append(opts,
			nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
				if err != nil {
					log.Warn("nats disconnected", "err", err)
				}
			}),
			nats.ReconnectHandler(func(nc *nats.Conn) { log.Info("nats reconnected", "url", nc.ConnectedUrl()) }))
	}
	if cfg.URL == "" {
		ns, err := StartEmbedded(cfg.Listen, filepath.Join(dataDir, "nats"))
		if err != nil {
			return nil, err
		}
		b.Embedded = ns
		b.url = ns.ClientURL()
		opts = append(opts, nats.InProcessServer(ns))
		if log != nil {
			log.Info("embedded nats started", "listen", b.url, "store", filepath.Join(dataDir, "nats"))
		}
	} else {
		auth, err := authOptions(cfg)
		if err != nil {
			return nil, err
		}
		opts = append(opts, auth...)
		opts = append(opts, nats.RetryOnFailedConnect(false))
		if dl, ok := ctx.Deadline(); ok {
			opts = append(opts, nats.Timeout(time.Until(dl)))
		}
	}
	nc, err := nats.Connect(b.url, opts...)
	if err != nil {
		b.Close()
		return nil, fmt.Errorf("nats at %s: %w: %w", b.url, ErrNATSUnreachable, err)
	}
	b.NC = nc
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4096))
	if err != nil {
		b.Close()
		return nil, fmt.Errorf("nats at %s: jetstream: %w", b.url, err)
	}
	b.JS = js
	return b, nil
}

// URL is the client URL of the server, for messages and for other processes.
func (b *Broker) URL() string { return b.url }

// Close drains the connection and shuts the embedded server down.
func (b *Broker) Close() {
	if b.NC != nil {
		_ = b.NC.Drain()
		for i := 0; i < 50 && !b.NC.IsClosed(); i++ {
			time.Sleep(20 * time.Millisecond)
		}
		b.NC.Close()
	}
	if b.Embedded != nil {
		b.Embedded.Shutdown()
		b.Embedded.WaitForShutdown()
	}
}

// StartEmbedded starts a JetStream server on listen (host:port; port 0 or -1
// picks a free one) storing under storeDir, and waits until it takes clients.
func StartEmbedded(listen, storeDir string) (*server.Server, error) {
	host, portStr, err := net.SplitHostPort(listen)
	if err != nil {
		return nil, fmt.Errorf("nats.listen %q: %w", listen, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, fmt.Errorf("nats.listen %q: bad port", listen)
	}
	if port == 0 {
		port = server.RANDOM_PORT
	}
	ns, err := server.NewServer(&server.Options{
		ServerName: "spendgate-embedded",
		Host:       host,
		Port:       port,
		JetStream:  true,
		StoreDir:   storeDir,
		NoSigs:     true,
		MaxPayload: 1 << 20,
	})
	if err != nil {
		return nil, fmt.Errorf("embedded nats: %w", err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		ns.Shutdown()
		return nil, fmt.Errorf("embedded nats on %s: not ready after 10s (port in use?)", listen)
	}
	return ns, nil
}

func authOptions(cfg config.NATS) ([]nats.Option, error) {
	var opts []nats.Option
	if cfg.Creds != "" {
		opts = append(opts, nats.UserCredentials(cfg.Creds))
	}
	if cfg.User != "" {
		opts = append(opts, nats.UserInfo(cfg.User, cfg.Password))
	}
	if cfg.Token != "" {
		opts = append(opts, nats.Token(cfg.Token))
	}
	tc, err := cfg.TLS.Config()
	if err != nil {
		return nil, fmt.Errorf("nats %w", err)
	}
	if tc != nil {
		opts = append(opts, nats.Secure(tc))
	}
	return opts, nil
}

// StreamConfigs are the three streams of the contract, as ingest creates them.
func StreamConfigs(cfg config.NATS) []jetstream.StreamConfig {
	mk := func(name, subject, desc string) jetstream.StreamConfig {
		return jetstream.StreamConfig{
			Name:        name,
			Description: desc,
			Subjects:    []string{subject},
			Storage:     jetstream.FileStorage,
			Retention:   jetstream.LimitsPolicy,
			Duplicates:  cfg.DuplicateWindow,
			MaxAge:      cfg.MaxAge,
			Replicas:    cfg.Replicas,
			Discard:     jetstream.DiscardOld,
		}
	}
	gate := mk(StreamGate, GatePrefix+">", "spendgate gate-state events and alerts: the gate's history, kept")
	gate.MaxAge = 0 // a few events a day: the whole history is kept
	return []jetstream.StreamConfig{
		mk(StreamEvents, SubjectPrefix+">", "spendgate cost events, one per paid API call"),
		mk(StreamDLQ, DLQPrefix+">", "spendgate cost events rejected by ingest, with the reason in headers"),
		gate,
	}
}

// EnsureStreams creates the streams, or updates them to cfg.
func EnsureStreams(ctx context.Context, js jetstream.JetStream, cfg config.NATS) error {
	for _, sc := range StreamConfigs(cfg) {
		if _, err := js.CreateOrUpdateStream(ctx, sc); err != nil {
			return fmt.Errorf("stream %s: %w", sc.Name, err)
		}
	}
	return nil
}

// ConsumerConfig is the durable pull consumer every ingest worker shares.
func ConsumerConfig(name string, ackWait time.Duration, maxAckPending int) jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:       name,
		Description:   "spendgate ingest: cost events into ClickHouse",
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       ackWait,
		MaxDeliver:    -1, // a message is acked only once stored: never give up on one
		MaxAckPending: maxAckPending,
		FilterSubject: SubjectPrefix + ">",
	}
}
