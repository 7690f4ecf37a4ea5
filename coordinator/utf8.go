package coordinator

import (
	"context"
	"fmt"
	"strings"
	"unicode/utf8"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/regroup-dev/regroup"
	"github.com/regroup-dev/regroup/internal/rpcerr"
)

// UTF8Checks returns the server options that refuse a request with a string
// field that is not valid UTF-8, with INVALID_REQUEST (gRPC InvalidArgument)
// naming the field. The API's messages do not check UTF-8 when decoded
// (proto/regroup/v1 sets features.utf8_validation = NONE): grpc-go decodes
// a request before any interceptor runs and reports a decoding error as
// Internal, which tells a client the server failed rather than its request.
// Register these options on every server of the API.
func UTF8Checks() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			if err := checkUTF8(req); err != nil {
				return nil, err
			}
			return h(ctx, req)
		}),
		grpc.ChainStreamInterceptor(func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			return h(srv, utf8Stream{ss})
		}),
	}
}

// utf8Stream checks every message a stream receives.
type utf8Stream struct{ grpc.ServerStream }

func (s utf8Stream) RecvMsg(m any) error {
	if err := s.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	return checkUTF8(m)
}

// checkUTF8 returns the status refusing req if one of its strings, at any
// depth, is not valid UTF-8.
func checkUTF8(req any) error {
	m, ok := req.(proto.Message)
	if !ok {
		return nil
	}
	if path := invalidUTF8(m.ProtoReflect(), ""); path != "" {
		return rpcerr.ToStatus(regroup.Errorf(regroup.CodeInvalidRequest, "%s: is not valid UTF-8", path).With(regroup.MetaField, path))
	}
	return nil
}

// invalidUTF8 returns the path of the first string field of m (prefixed
// with prefix) that is not valid UTF-8, or "".
func invalidUTF8(m protoreflect.Message, prefix string) string {
	var bad string
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		name := prefix + string(fd.Name())
		switch {
		case fd.IsMap():
			v.Map().Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
				bad = invalidValue(fd.MapValue(), mv, fmt.Sprintf("%s[%q]", name, strings.ToValidUTF8(k.String(), "?")))
				if bad == "" && fd.MapKey().Kind() == protoreflect.StringKind && !utf8.ValidString(k.String()) {
					bad = name
				}
				return bad == ""
			})
		case fd.IsList():
			l := v.List()
			for i := 0; i < l.Len() && bad == ""; i++ {
				bad = invalidValue(fd, l.Get(i), fmt.Sprintf("%s[%d]", name, i))
			}
		default:
			bad = invalidValue(fd, v, name)
		}
		return bad == ""
	})
	return bad
}

func invalidValue(fd protoreflect.FieldDescriptor, v protoreflect.Value, path string) string {
	switch fd.Kind() {
	case protoreflect.StringKind:
		if !utf8.ValidString(v.String()) {
			return path
		}
	case protoreflect.MessageKind, protoreflect.GroupKind:
		return invalidUTF8(v.Message(), path+".")
	}
	return ""
}
