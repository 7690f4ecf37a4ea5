package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"regexp"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/regroup-dev/regroup"
	"github.com/regroup-dev/regroup/internal/rpcerr"
	regroupv1 "github.com/regroup-dev/regroup/proto/regroup/v1"
)

// client holds the flags of every command that talks to a coordinator's
// Admin API, and the helpers those commands share.
type client struct {
	endpoint string
	output   string
	timeout  time.Duration
	security clientSecurity
}

// addClientFlags gives cmd, and every command under it, the flags
// --endpoint, --output and --timeout, with environment twins.
func addClientFlags(cmd *cobra.Command) *client {
	c := &client{}
	pf := cmd.PersistentFlags()
	pf.StringVar(&c.endpoint, "endpoint", "127.0.0.1:7070", "the coordinator's gRPC address (host:port; the port defaults to 7070)")
	pf.StringVarP(&c.output, "output", "o", "table", "output format: table (aligned, for people, fitted to 80 columns), wide (a table with every value whole) or json (every field, for programs)")
	pf.DurationVar(&c.timeout, "timeout", 10*time.Second, "how long to wait for the coordinator's answer")
	c.security.register(pf)
	cmd.PersistentPreRunE = func(*cobra.Command, []string) error {
		if c.output != "table" && c.output != "wide" && c.output != "json" {
			return fmt.Errorf("--output %q: want table, wide or json", c.output)
		}
		if c.timeout <= 0 {
			return fmt.Errorf("--timeout %v: want a positive duration such as 10s", c.timeout)
		}
		ep, err := normalizeEndpoint(c.endpoint)
		if err != nil {
			return err
		}
		c.endpoint = ep
		return nil
	}
	bindPersistentEnv(cmd)
	return c
}

// defaultPort is the port of `regroup serve --listen`'s default address.
const defaultPort = "7070"

// normalizeEndpoint turns what people type for an address into host:port:
// a URL scheme and path are dropped (http://10.0.0.1:7070/ works) and a
// missing port is 7070, not gRPC's 443.
func normalizeEndpoint(ep string) (string, error) {
	if i := strings.Index(ep, "://"); i >= 0 {
		ep = ep[i+3:]
	}
	if i := strings.IndexByte(ep, '/'); i >= 0 {
		ep = ep[:i]
	}
	if ep == "" {
		return "", errors.New("--endpoint is empty: want the coordinator's gRPC address, such as 127.0.0.1:7070")
	}
	if _, _, err := net.SplitHostPort(ep); err == nil {
		return ep, nil
	}
	host := strings.TrimSuffix(strings.TrimPrefix(ep, "["), "]")
	if strings.Contains(host, ":") && net.ParseIP(host) == nil {
		return "", fmt.Errorf("--endpoint %q: want host:port, such as 127.0.0.1:7070 ([::1]:7070 for IPv6)", ep)
	}
	return net.JoinHostPort(host, defaultPort), nil
}

// admin connects to the coordinator. Connecting is lazy: an unreachable
// coordinator shows up as the first call's error.
func (c *client) admin() (regroupv1.AdminClient, io.Closer, error) {
	opts, err := c.security.dialOptions(c.endpoint)
	if err != nil {
		return nil, nil, err
	}
	// A big group's description is as large as the coordinator allows
	// (--max-message-bytes), far above gRPC's 4 MiB default.
	opts = append(opts, grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(math.MaxInt32)))
	conn, err := grpc.NewClient(c.endpoint, opts...)
	if err != nil {
		return nil, nil, fmt.Errorf("--endpoint %q: %w", c.endpoint, err)
	}
	return regroupv1.NewAdminClient(conn), conn, nil
}

// call runs one Admin RPC with the --timeout and explains its error.
func call[Resp any](cmd *cobra.Command, c *client, rpc func(ctx context.Context, admin regroupv1.AdminClient) (Resp, error)) (Resp, error) {
	var zero Resp
	admin, conn, err := c.admin()
	if err != nil {
		return zero, err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(cmd.Context(), c.timeout)
	defer cancel()
	resp, err := rpc(ctx, admin)
	if err != nil {
		return zero, c.explain(err)
	}
	return resp, nil
}

// explain turns an RPC error into one line that says what happened and, where
// it can, what to do.
func (c *client) explain(err error) error {
	var e *regroup.Error
	if errors.As(rpcerr.FromStatus(err), &e) {
		msg := fmt.Sprintf("%s (%s)", e.Message, e.Code)
		if e.Message == "" {
			msg = string(e.Code)
		}
		if leader := e.Metadata[regroup.MetaLeader]; e.Code == regroup.CodeNotCoordinator && leader != "" {
			msg += fmt.Sprintf(": the leader is at %s; use --endpoint %s", leader, leader)
		}
		return errors.New(msg)
	}
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	if strings.Contains(st.Message(), "server preface") || strings.Contains(st.Message(), "malformed header") {
		return fmt.Errorf("the server at %s does not speak gRPC (%s): is --endpoint the metrics address (default port 7071) instead of the coordinator's gRPC address (default port 7070)?", c.endpoint, st.Message())
	}
	switch st.Code() {
	case codes.Unavailable:
		return fmt.Errorf("cannot reach the coordinator at %s: %s", c.endpoint, st.Message())
	case codes.DeadlineExceeded:
		return fmt.Errorf("cannot reach the coordinator at %s: no answer within %v; check that it runs there, or raise --timeout", c.endpoint, c.timeout)
	case codes.Unimplemented:
		if strings.Contains(st.Message(), "unknown service") {
			return fmt.Errorf("the server at %s does not serve Regroup's Admin API (%s): is --endpoint a coordinator's gRPC address (default port 7070), or its Admin address when it runs with --admin-listen?", c.endpoint, st.Message())
		}
		return fmt.Errorf("the coordinator at %s does not offer this command (%s): upgrade it", c.endpoint, st.Message())
	}
	return fmt.Errorf("the coordinator at %s answered %s: %s", c.endpoint, st.Code(), st.Message())
}

// jsonOptions print the .proto field names, and every field even when it
// holds its zero value, so that programs find the same keys every time.
var jsonOptions = protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: true}

// printJSON writes m as indented JSON.
func printJSON(w io.Writer, m proto.Message) error {
	return writeJSON(w, m, "  ")
}

// printJSONLine writes m as JSON on one line.
func printJSONLine(w io.Writer, m proto.Message) error {
	return writeJSON(w, m, "")
}

func writeJSON(w io.Writer, m proto.Message, indent string) error {
	raw, err := jsonOptions.Marshal(m)
	if err != nil {
		return err
	}
	// protojson varies its whitespace on purpose; re-encode it canonically.
	var buf bytes.Buffer
	if indent == "" {
		err = json.Compact(&buf, raw)
	} else {
		err = json.Indent(&buf, raw, "", indent)
	}
	if err != nil {
		return err
	}
	buf.WriteByte('\n')
	_, err = w.Write(buf.Bytes())
	return err
}

// table writes aligned columns.
type table struct{ *tabwriter.Writer }

func newTable(w io.Writer) table {
	return table{tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)}
}

// row writes one row of cells.
func (t table) row(cells ...string) {
	fmt.Fprintln(t, strings.Join(cells, "\t"))
}

// shorten keeps an id to n characters by cutting out its middle, where the
// ids Regroup mints are least distinct: "consumer-1-3f2a…b8c9d0".
func shorten(id string, n int) string {
	if utf8.RuneCountInString(id) <= n {
		return id
	}
	r := []rune(id)
	head := (n - 1) / 2
	tail := n - 1 - head
	return string(r[:head]) + "…" + string(r[len(r)-tail:])
}

// cells fits values into table cells: shortened, clipped and abbreviated
// to 80 columns, or whole with -o wide.
type cells struct{ wide bool }

// cells returns how c's tables fit their values.
func (c *client) cells() cells { return cells{wide: c.output == "wide"} }

func (f cells) shorten(id string, n int) string {
	if f.wide {
		return id
	}
	return shorten(id, n)
}

func (f cells) clip(text string, n int) string {
	if f.wide {
		return text
	}
	return clip(text, n)
}

// member fits a member id into n characters: an id Regroup minted is
// abbreviated and, if still too long, clipped at its end, so that it keeps
// its prefix (the client or instance id) and the start of its UUID
// ("orders-0-3f2a9c…"); any other id loses its middle.
func (f cells) member(id string, n int) string {
	if f.wide {
		return id
	}
	if a := abbreviate(id); a != id {
		return clip(a, n)
	}
	return shorten(id, n)
}

func (f cells) abbreviate(text string) string {
	if f.wide {
		return text
	}
	return abbreviate(text)
}

// mintedUUID matches the UUID part of the member ids Regroup mints
// ("PREFIX-UUID").
var mintedUUID = regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`)

// abbreviate shortens every minted member id in text to its prefix and the
// first 8 hex digits of its UUID, as git abbreviates commits:
// "consumer-1-3f2a9c1e…". -o json shows ids whole.
func abbreviate(text string) string {
	return mintedUUID.ReplaceAllStringFunc(text, func(u string) string { return u[:8] + "…" })
}

// clip keeps text to n characters by cutting its end.
func clip(text string, n int) string {
	if utf8.RuneCountInString(text) <= n {
		return text
	}
	return string([]rune(text)[:n-1]) + "…"
}

// stateName is a group state as operators know it: "Stable".
func stateName(s regroupv1.GroupState) string {
	switch s {
	case regroupv1.GroupState_GROUP_STATE_EMPTY:
		return "Empty"
	case regroupv1.GroupState_GROUP_STATE_PREPARING_REBALANCE:
		return "PreparingRebalance"
	case regroupv1.GroupState_GROUP_STATE_COMPLETING_REBALANCE:
		return "CompletingRebalance"
	case regroupv1.GroupState_GROUP_STATE_STABLE:
		return "Stable"
	case regroupv1.GroupState_GROUP_STATE_DEAD:
		return "Dead"
	}
	return s.String()
}

// humanDuration rounds d for reading: "530ms", "4.2s", "3m12s".
func humanDuration(d time.Duration) string {
	switch {
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < 10*time.Second:
		return d.Round(100 * time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}

// oneArg accepts exactly one positional argument, named name in the error.
func oneArg(name string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != 1 {
			return fmt.Errorf("want one %s argument, got %d: %s", name, len(args), cmd.UseLine())
		}
		return nil
	}
}
